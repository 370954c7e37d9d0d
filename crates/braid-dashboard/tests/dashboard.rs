//! The dashboard in a real browser: workers with events on the in-memory broker and on
//! Redis run tasks, headless Chromium opens the page, and the rendered DOM shows the counts
//! by state, the workers with their state and load, live updates (server-sent events) of a
//! page opened before the tasks ran, the search by id and by name, a task's detail, and
//! what the Revoke and Retry buttons do when clicked (for Python's argument reprs too).
//!
//! Needs Debian's `chromium` and `chromium-driver` (or `$BRAID_CHROMIUM` and
//! `$BRAID_CHROMEDRIVER`); scripts/test installs them. The browser is driven through
//! chromedriver (W3C WebDriver), so the page's live connection stays open while the test
//! reads its DOM. The Redis case uses database 7 with a key prefix of its own.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use braid_taskq::{App, CallOptions, State, Worker};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

#[braid_core::task(name = "dash.add")]
fn add(x: i64, y: i64) -> i64 {
    x + y
}

#[derive(Debug)]
struct TaskFailed(String);

impl std::fmt::Display for TaskFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[braid_core::task(name = "dash.fail")]
fn fail(message: String) -> Result<(), TaskFailed> {
    Err(TaskFailed(message))
}

/// Set when the tests are done with `dash.hold` tasks: they end then.
static RELEASE_HELD: AtomicBool = AtomicBool::new(false);

/// A long-running task: it runs until the test releases it (or a minute passes).
#[braid_core::task(name = "dash.hold")]
fn hold() -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !RELEASE_HELD.load(Ordering::Acquire) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

fn program(env: &str, default: &str, what: &str) -> PathBuf {
    let path = std::env::var_os(env).map(PathBuf::from).unwrap_or_else(|| {
        // chromedriver wants the browser's full path.
        std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .map(|dir| dir.join(default))
            .find(|p| p.is_file())
            .unwrap_or_else(|| PathBuf::from(default))
    });
    let ok = Command::new(&path)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "this test needs {what} at {} (scripts/test installs Debian's chromium and \
         chromium-driver; or set {env})",
        path.display()
    );
    path
}

/// chromedriver driving headless Chromium (W3C WebDriver over HTTP), killed when dropped.
struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
    profile: PathBuf,
}

impl Browser {
    fn start() -> Browser {
        let chromium = program("BRAID_CHROMIUM", "chromium", "Chromium");
        let chromedriver = program("BRAID_CHROMEDRIVER", "chromedriver", "chromedriver");
        // A free port for chromedriver (it takes no port 0).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let profile = std::env::temp_dir().join(format!(
            "braid-dashboard-chromium-{}",
            uuid::Uuid::new_v4().simple()
        ));
        let mut browser = Browser {
            driver,
            addr,
            session: String::new(),
            profile,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", format!("--user-data-dir={}", browser.profile.display()),
                ],
            },
        }}});
        let (status, body) = http(addr, "POST", "/session", Some(&capabilities));
        assert_eq!(status, 200, "chromedriver refused a session: {body}");
        browser.session = body["value"]["sessionId"].as_str().unwrap().to_string();
        browser
    }

    fn open(&self, url: &str) {
        let (status, body) = http(
            self.addr,
            "POST",
            &format!("/session/{}/url", self.session),
            Some(&json!({"url": url})),
        );
        assert_eq!(status, 200, "{body}");
    }

    /// The page's DOM now, after its scripts ran.
    fn dom(&self) -> String {
        let (status, body) = http(
            self.addr,
            "POST",
            &format!("/session/{}/execute/sync", self.session),
            Some(&json!({"script": "return document.documentElement.outerHTML", "args": []})),
        );
        assert_eq!(status, 200, "{body}");
        body["value"].as_str().unwrap_or_default().to_string()
    }

    /// Runs `script` in the page (a function body) and returns what it returns.
    fn script(&self, script: &str) -> Value {
        let (status, body) = http(
            self.addr,
            "POST",
            &format!("/session/{}/execute/sync", self.session),
            Some(&json!({"script": script, "args": []})),
        );
        assert_eq!(status, 200, "{script}: {body}");
        body["value"].clone()
    }

    /// The text of the element with id `id`, or `None` when there is none.
    fn text_of(&self, id: &str) -> Option<String> {
        let script =
            format!("const e = document.getElementById({id:?}); return e ? e.textContent : null;");
        self.script(&script).as_str().map(str::to_string)
    }

    /// The WebDriver reference of the first element matching the CSS `selector`.
    fn element(&self, selector: &str) -> String {
        let (status, body) = http(
            self.addr,
            "POST",
            &format!("/session/{}/element", self.session),
            Some(&json!({"using": "css selector", "value": selector})),
        );
        assert_eq!(status, 200, "no element {selector}: {body}");
        body["value"]["element-6066-11e4-a52e-4f735466cecf"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Clicks the element matching `selector`, as a user would. A live update may
    /// replace the element between finding and clicking it; then it is found again.
    fn click(&self, selector: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let element = self.element(selector);
            let (status, body) = http(
                self.addr,
                "POST",
                &format!("/session/{}/element/{element}/click", self.session),
                Some(&json!({})),
            );
            if status == 200 {
                return;
            }
            let stale = body["value"]["error"] == "stale element reference";
            assert!(
                stale && Instant::now() < deadline,
                "clicking {selector}: {body}"
            );
        }
    }

    /// Replaces what the input `selector` holds by typing `text` into it.
    fn type_into(&self, selector: &str, text: &str) {
        let element = self.element(selector);
        let (status, body) = http(
            self.addr,
            "POST",
            &format!("/session/{}/element/{element}/clear", self.session),
            Some(&json!({})),
        );
        assert_eq!(status, 200, "clearing {selector}: {body}");
        let (status, body) = http(
            self.addr,
            "POST",
            &format!("/session/{}/element/{element}/value", self.session),
            Some(&json!({"text": text})),
        );
        assert_eq!(status, 200, "typing into {selector}: {body}");
    }

    /// Waits until `ready` holds for the page; `what` names it in the failure message.
    fn wait_until(&self, what: &str, ready: impl Fn(&Browser) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ready(self) {
            assert!(
                Instant::now() < deadline,
                "the page never showed {what}:\n{}",
                self.dom()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The ids of the rows in the task table, top to bottom.
    fn task_rows(&self) -> Vec<String> {
        let rows = self.script(
            "return [...document.querySelectorAll('#tasks tr.task')].map(r => r.dataset.task);",
        );
        rows.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until the DOM satisfies `ready`; returns it.
    fn wait_for(&self, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let dom = self.dom();
            if ready(&dom) {
                return dom;
            }
            assert!(
                Instant::now() < deadline,
                "the page never showed {what}:\n{dom}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _closed = http(
                self.addr,
                "DELETE",
                &format!("/session/{}", self.session),
                None,
            );
        }
        if let Err(e) = self.driver.kill() {
            eprintln!("could not kill chromedriver: {e}");
        }
        if let Err(e) = self.driver.wait() {
            eprintln!("could not reap chromedriver: {e}");
        }
        if let Err(e) = std::fs::remove_dir_all(&self.profile) {
            eprintln!("could not remove {}: {e}", self.profile.display());
        }
    }
}

/// A one-shot HTTP/1.1 request with an optional JSON body; returns the status and the
/// JSON body of the answer.
fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let payload = body.map(Value::to_string).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{payload}",
        payload.len()
    )
    .unwrap();
    // Read the head, then exactly the body (the server may keep the connection open).
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "the connection closed before the response head");
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let length = head.lines().find_map(|l| {
        l.strip_prefix("content-length:")
            .and_then(|v| v.trim().parse::<usize>().ok())
    });
    let chunked = head.contains("transfer-encoding: chunked");
    loop {
        let have = raw.len() - head_end;
        let done = match length {
            Some(len) => have >= len,
            None if chunked => raw.ends_with(b"0\r\n\r\n"),
            None => false,
        };
        if done {
            break;
        }
        let n = stream.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
    }
    let body = String::from_utf8_lossy(&raw[head_end..]).into_owned();
    let body = if chunked { dechunk(&body) } else { body };
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

fn element_text<'a>(dom: &'a str, id: &str) -> &'a str {
    let marker = format!("id=\"{id}\"");
    let start = dom
        .find(&marker)
        .unwrap_or_else(|| panic!("no #{id} in the page:\n{dom}"));
    let after = &dom[start..];
    let open = after.find('>').unwrap() + 1;
    let close = after[open..].find('<').unwrap();
    &after[open..open + close]
}

fn memory_url() -> String {
    format!("memory://dashboard-{}", uuid::Uuid::new_v4().simple())
}

fn redis_url() -> String {
    format!(
        "redis://127.0.0.1:6379/7?global_keyprefix=braid-dashboard-test-{}-",
        uuid::Uuid::new_v4().simple()
    )
}

#[test]
fn the_page_shows_workers_counts_and_a_task_detail() {
    counts_and_detail(&memory_url());
}

#[test]
fn the_page_shows_workers_counts_and_a_task_detail_on_redis() {
    counts_and_detail(&redis_url());
}

fn counts_and_detail(url: &str) {
    let app = App::new(url, Some(url)).unwrap();
    let running = braid_dashboard::spawn(&app, "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = running.addr();
    let hostname = format!("dash-{}@test", uuid::Uuid::new_v4().simple());
    let worker = Worker::builder(&app)
        .concurrency(2)
        .events(true)
        .hostname(&hostname)
        .start()
        .unwrap();
    let mut ok = Vec::new();
    for i in 0..5 {
        ok.push(
            app.send_task("dash.add", vec![json!(i), json!(i)], CallOptions::new())
                .unwrap(),
        );
    }
    let bad = app
        .send_task("dash.fail", vec![json!("boom")], CallOptions::new())
        .unwrap();
    for r in &ok {
        r.get(WAIT).unwrap();
    }
    assert!(bad.get(WAIT).is_err());
    let deadline = Instant::now() + WAIT;
    loop {
        let s = running.dashboard().snapshot();
        if s["counts"]["SUCCESS"] == 5 && s["counts"]["FAILURE"] == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the dashboard saw {s}");
        std::thread::sleep(Duration::from_millis(20));
    }

    let browser = Browser::start();
    browser.open(&format!("http://{addr}/?task={}", bad.id()));
    let dom = browser.wait_for("the counts, live updates and the task detail", |dom| {
        dom.contains("id=\"count-SUCCESS\">5<")
            && dom.contains("data-live=\"yes\"")
            && dom.contains("id=\"detail-exception\"")
    });
    assert_eq!(element_text(&dom, "count-SUCCESS"), "5", "{dom}");
    assert_eq!(element_text(&dom, "count-FAILURE"), "1");
    assert_eq!(element_text(&dom, "count-seen"), "6");
    assert!(
        dom.contains(&format!("data-worker=\"{hostname}\"")),
        "{dom}"
    );
    assert!(dom.contains("data-live=\"yes\""), "no live updates: {dom}");
    assert!(dom.contains("dash.fail"));
    let exception_at = dom
        .find("id=\"detail-exception\"")
        .expect("task detail shown");
    assert!(dom[exception_at..].contains("TaskFailed('boom')"), "{dom}");
    assert!(dom.contains("id=\"detail-traceback\""));
    assert!(dom.contains("id=\"revoke\"") && dom.contains("id=\"retry\""));

    // The search finds tasks by name.
    let (status, found) = http(addr, "GET", "/api/tasks?search=DASH.ADD", None);
    assert_eq!(status, 200);
    assert_eq!(found.as_array().unwrap().len(), 5);
    let (status, failed) = http(addr, "GET", "/api/tasks?state=failure", None);
    assert_eq!((status, failed.as_array().unwrap().len()), (200, 1));

    // The Retry button sends the task again; Revoke flags it.
    let (status, retried) = http(
        addr,
        "POST",
        &format!("/api/task/{}/retry", ok[3].id()),
        None,
    );
    assert_eq!(status, 200, "{retried}");
    let again = app.result(retried["id"].as_str().unwrap());
    assert_eq!(again.get(WAIT).unwrap(), json!(6));
    let later = app
        .send_task(
            "dash.add",
            vec![json!(1), json!(1)],
            CallOptions::new().countdown(Duration::from_secs(3)),
        )
        .unwrap();
    let (status, revoked) = http(
        addr,
        "POST",
        &format!("/api/task/{}/revoke", later.id()),
        None,
    );
    assert_eq!(status, 200, "{revoked}");
    assert!(later.get(WAIT).is_err());
    assert_eq!(later.state().unwrap(), State::Revoked);
    let (status, _) = http(addr, "GET", "/api/task/no-such-task", None);
    assert_eq!(status, 404);

    worker.shutdown();
    running.shutdown();
}

/// Waits until the dashboard's own state satisfies `ready`.
fn wait_snapshot(running: &braid_dashboard::RunningDashboard, ready: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + WAIT;
    loop {
        let s = running.dashboard().snapshot();
        if ready(&s) {
            return;
        }
        assert!(Instant::now() < deadline, "the dashboard saw {s}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Shows `id` in the detail panel the way a user does: searches for it, clicks its row.
fn open_detail(browser: &Browser, id: &str) {
    browser.type_into("#search", id);
    browser.wait_until("the searched task alone", |b| b.task_rows() == [id]);
    browser.click(&format!("#tasks tr[data-task=\"{id}\"]"));
    browser.wait_until("the task's detail", |b| {
        b.text_of("detail-uuid").as_deref() == Some(id)
    });
}

#[test]
fn a_page_opened_first_updates_live_searches_and_revokes_by_click() {
    let url = memory_url();
    let app = App::new(&url, Some(&url)).unwrap();
    let running = braid_dashboard::spawn(&app, "127.0.0.1:0".parse().unwrap()).unwrap();
    let browser = Browser::start();
    browser.open(&format!("http://{}/", running.addr()));
    browser.wait_until("the live connection", |b| {
        b.script("return document.getElementById('live').dataset.live;") == "yes"
    });
    assert_eq!(browser.text_of("count-seen").as_deref(), Some("0"));
    // Reloading would lose this mark: the counts below must change without one.
    browser.script("window.braidTestMark = 'still here'; return null;");

    // Started without events: the dashboard turns them on (as Flower does), and its
    // heartbeats bring the worker's load.
    let worker = Worker::builder(&app)
        .concurrency(2)
        .events(false)
        .hostname("live@test")
        .start()
        .unwrap();
    browser.wait_until("the worker online with its load", |b| {
        b.script(
            "const r = document.querySelector('#workers tr[data-worker=\"live@test\"]');\
             return r ? [r.dataset.state, r.querySelector('.load').textContent] : null;",
        )
        .as_array()
        .is_some_and(|a| a[0] == "online" && a[1].as_str().is_some_and(|l| !l.is_empty()))
    });
    let ok: Vec<_> = (0..3)
        .map(|i| {
            app.send_task("dash.add", vec![json!(i), json!(10)], CallOptions::new())
                .unwrap()
        })
        .collect();
    for r in &ok {
        r.get(WAIT).unwrap();
    }
    browser.wait_until("three successes, live", |b| {
        b.text_of("count-SUCCESS").as_deref() == Some("3")
    });
    assert_eq!(browser.text_of("count-seen").as_deref(), Some("3"));
    assert_eq!(
        browser.script("return window.braidTestMark || null;"),
        json!("still here"),
        "the page was reloaded"
    );
    let worker_row = browser.script(
        "const r = document.querySelector('#workers tr[data-worker=\"live@test\"]');\
         return [r.querySelector('.active').textContent, r.querySelector('.processed').textContent];",
    );
    assert!(
        worker_row[0]
            .as_str()
            .is_some_and(|a| a.ends_with("/ 2") || a == "0"),
        "active / pool: {worker_row}"
    );

    // Search by id: only that task; by name: all three.
    let wanted = ok[1].id().to_string();
    open_detail(&browser, &wanted);
    browser.wait_until("the detail of a succeeded task", |b| {
        b.text_of("detail-state").as_deref() == Some("SUCCESS")
    });
    assert_eq!(browser.text_of("detail-name").as_deref(), Some("dash.add"));
    assert_eq!(browser.text_of("detail-args").as_deref(), Some("[1,10]"));
    assert_eq!(browser.text_of("detail-result").as_deref(), Some("11"));
    assert_eq!(browser.text_of("detail-retries").as_deref(), Some("0"));
    assert_eq!(
        browser.text_of("detail-worker").as_deref(),
        Some("live@test")
    );
    for field in ["detail-received", "detail-started", "detail-succeeded"] {
        let t = browser.text_of(field).unwrap_or_default();
        assert!(t.starts_with("20"), "{field} is {t:?}");
    }
    browser.type_into("#search", "dash.ADD");
    browser.wait_until("the three tasks found by name", |b| {
        b.task_rows().len() == 3
    });

    // Revoke, clicked on a running task: it ends REVOKED.
    let held = app
        .send_task("dash.hold", vec![], CallOptions::new())
        .unwrap();
    open_detail(&browser, held.id());
    browser.wait_until("the held task running", |b| {
        b.text_of("detail-state").as_deref() == Some("STARTED")
    });
    browser.click("#revoke");
    browser.wait_until("the task revoked", |b| {
        b.text_of("detail-state").as_deref() == Some("REVOKED")
    });
    let outcome = browser.text_of("action-outcome").unwrap_or_default();
    assert!(outcome.contains("revoked"), "{outcome}");
    assert!(held.get(WAIT).is_err());
    assert_eq!(held.state().unwrap(), State::Revoked);
    browser.wait_until("the revoked count", |b| {
        b.text_of("count-REVOKED").as_deref() == Some("1")
    });

    RELEASE_HELD.store(true, Ordering::Release);
    drop(browser);
    worker.shutdown();
    running.shutdown();
}

#[test]
fn retry_clicked_sends_failed_and_python_tasks_again_or_says_why_not() {
    let url = memory_url();
    let app = App::new(&url, Some(&url)).unwrap();
    let running = braid_dashboard::spawn(&app, "127.0.0.1:0".parse().unwrap()).unwrap();
    let worker = Worker::builder(&app)
        .concurrency(2)
        .events(true)
        .hostname("retry@test")
        .start()
        .unwrap();
    let failed = app
        .send_task("dash.fail", vec![json!("again")], CallOptions::new())
        .unwrap();
    assert!(failed.get(WAIT).is_err());
    // What a Python client's task looks like in the events: its arguments are reprs.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let from_python = format!("py-{}", uuid::Uuid::new_v4());
    let unreadable = format!("py-{}", uuid::Uuid::new_v4());
    for (id, args) in [(&from_python, "(20, 22)"), (&unreadable, "(inf, 1)")] {
        let event = braid_taskq::Event::from_json(json!({
            "type": "task-received", "uuid": id, "name": "dash.add", "args": args,
            "kwargs": "{}", "hostname": "celery@python", "timestamp": now, "retries": 0,
        }))
        .unwrap();
        running.dashboard().event(&event);
    }
    wait_snapshot(&running, |s| s["counts"]["FAILURE"] == 1);

    let browser = Browser::start();
    browser.open(&format!("http://{}/", running.addr()));
    browser.wait_until("the failed task", |b| {
        b.text_of("count-FAILURE").as_deref() == Some("1")
    });

    // A failed braid task: Retry sends it again, under a new id that the page then shows.
    open_detail(&browser, failed.id());
    browser.click("#retry");
    browser.wait_until("the retry's answer", |b| {
        b.script("return document.getElementById('action-outcome').dataset.outcome || null;")
            == "ok"
    });
    let again = browser
        .script("return document.getElementById('action-outcome').dataset.newTask;")
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(again, failed.id());
    let err = app.result(&again).get(WAIT).unwrap_err().to_string();
    assert!(err.contains("again"), "{err}");
    browser.type_into("#search", "");
    browser.wait_until("the new task in the list", |b| {
        b.task_rows().contains(&again)
    });
    browser.wait_until("two failures", |b| {
        b.text_of("count-FAILURE").as_deref() == Some("2")
    });

    // A Python client's task: its repr arguments are read and sent again.
    open_detail(&browser, &from_python);
    assert_eq!(browser.text_of("detail-args").as_deref(), Some("(20, 22)"));
    browser.click("#retry");
    browser.wait_until("the retry's answer", |b| {
        b.script("return document.getElementById('action-outcome').dataset.outcome || null;")
            == "ok"
    });
    let again = browser
        .script("return document.getElementById('action-outcome').dataset.newTask;")
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(app.result(&again).get(WAIT).unwrap(), json!(42));

    // Arguments with no JSON form: the page says why, and it stays said.
    open_detail(&browser, &unreadable);
    browser.click("#retry");
    browser.wait_until("the retry's error", |b| {
        b.script("return document.getElementById('action-outcome').dataset.outcome || null;")
            == "error"
    });
    let said = browser.text_of("action-outcome").unwrap_or_default();
    assert!(
        said.starts_with("error: ") && said.contains("infinity"),
        "{said}"
    );
    let (status, body) = http(
        running.addr(),
        "POST",
        &format!("/api/task/{unreadable}/retry"),
        None,
    );
    assert_eq!(status, 422, "{body}");

    drop(browser);
    worker.shutdown();
    running.shutdown();
}

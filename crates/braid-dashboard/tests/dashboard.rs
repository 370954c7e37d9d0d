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

    /// Sends a WebDriver command of this session (`path` below `/session/ID`); returns
    /// the status and the answer.
    fn command(&self, path: &str, body: Value) -> (u16, Value) {
        http(
            self.addr,
            "POST",
            &format!("/session/{}{path}", self.session),
            Some(&body),
        )
    }

    fn open(&self, url: &str) {
        let (status, body) = self.command("/url", json!({"url": url}));
        assert_eq!(status, 200, "{body}");
    }

    /// The page's DOM now, after its scripts ran.
    fn dom(&self) -> String {
        self.script("return document.documentElement.outerHTML")
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Runs `script` in the page (a function body) and returns what it returns.
    fn script(&self, script: &str) -> Value {
        let (status, body) = self.command("/execute/sync", json!({"script": script, "args": []}));
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
        let (status, body) = self.command(
            "/element",
            json!({"using": "css selector", "value": selector}),
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
            let (status, body) = self.command(&format!("/element/{element}/click"), json!({}));
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
        let (status, body) = self.command(&format!("/element/{element}/clear"), json!({}));
        assert_eq!(status, 200, "clearing {selector}: {body}");
        let (status, body) =
            self.command(&format!("/element/{element}/value"), json!({"text": text}));
        assert_eq!(status, 200, "typing into {selector}: {body}");
    }

    /// Asks `check` until it gives a value, and returns that; `what` names what is awaited
    /// in the failure message.
    fn poll<T>(&self, what: &str, check: impl Fn(&Browser) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(value) = check(self) {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "the page never showed {what}:\n{}",
                self.dom()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until `ready` holds for the page; `what` names it in the failure message.
    fn wait_until(&self, what: &str, ready: impl Fn(&Browser) -> bool) {
        self.poll(what, |b| ready(b).then_some(()));
    }

    /// Waits until the element `id` holds the text `text`.
    fn wait_for_text(&self, id: &str, text: &str) {
        self.wait_until(&format!("#{id} reading {text:?}"), |b| {
            b.text_of(id).as_deref() == Some(text)
        });
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
        self.poll(what, |b| {
            let dom = b.dom();
            ready(&dom).then_some(dom)
        })
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

/// Asks the dashboard at `addr` to `action` (`retry` or `revoke`) the task `id`, as its
/// buttons do.
fn task_action(addr: SocketAddr, id: &str, action: &str) -> (u16, Value) {
    http(addr, "POST", &format!("/api/task/{id}/{action}"), None)
}

/// A dashboard on a free port over an app on `url`.
fn start_dashboard(url: &str) -> (App, braid_dashboard::RunningDashboard) {
    let app = App::new(url, Some(url)).unwrap();
    let running = braid_dashboard::spawn(&app, "127.0.0.1:0".parse().unwrap()).unwrap();
    (app, running)
}

/// A worker of two threads named `hostname`, sending events from the start or not.
fn start_worker(app: &App, hostname: &str, events: bool) -> Worker {
    Worker::builder(app)
        .concurrency(2)
        .events(events)
        .hostname(hostname)
        .start()
        .unwrap()
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
    let (app, running) = start_dashboard(url);
    let addr = running.addr();
    let hostname = format!("dash-{}@test", uuid::Uuid::new_v4().simple());
    let worker = start_worker(&app, &hostname, true);
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
    wait_snapshot(&running, |s| {
        s["counts"]["SUCCESS"] == 5 && s["counts"]["FAILURE"] == 1
    });

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
    let (status, retried) = task_action(addr, ok[3].id(), "retry");
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
    let (status, revoked) = task_action(addr, later.id(), "revoke");
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
    browser.wait_for_text("detail-uuid", id);
}

#[test]
fn a_page_opened_first_updates_live_searches_and_revokes_by_click() {
    let (app, running) = start_dashboard(&memory_url());
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
    let worker = start_worker(&app, "live@test", false);
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
    browser.wait_for_text("count-SUCCESS", "3");
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
    browser.wait_for_text("detail-state", "SUCCESS");
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
    browser.wait_for_text("detail-state", "STARTED");
    browser.click("#revoke");
    browser.wait_for_text("detail-state", "REVOKED");
    let outcome = browser.text_of("action-outcome").unwrap_or_default();
    assert!(outcome.contains("revoked"), "{outcome}");
    assert!(held.get(WAIT).is_err());
    assert_eq!(held.state().unwrap(), State::Revoked);
    browser.wait_for_text("count-REVOKED", "1");

    RELEASE_HELD.store(true, Ordering::Release);
    drop(browser);
    worker.shutdown();
    running.shutdown();
}

/// Clicks Retry in the detail panel and waits until the page's outcome is `outcome`
/// (`ok` or `error`).
fn click_retry(browser: &Browser, outcome: &str) {
    browser.click("#retry");
    browser.wait_until(&format!("the retry's outcome {outcome:?}"), |b| {
        b.script("return document.getElementById('action-outcome').dataset.outcome || null;")
            == outcome
    });
}

/// Clicks Retry in the detail panel, waits for success, and returns the new task's id.
fn retry_by_click(browser: &Browser) -> String {
    click_retry(browser, "ok");
    browser
        .script("return document.getElementById('action-outcome').dataset.newTask;")
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn retry_clicked_sends_failed_and_python_tasks_again_or_says_why_not() {
    let (app, running) = start_dashboard(&memory_url());
    let worker = start_worker(&app, "retry@test", true);
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
    browser.wait_for_text("count-FAILURE", "1");

    // A failed braid task: Retry sends it again, under a new id that the page then shows.
    open_detail(&browser, failed.id());
    let again = retry_by_click(&browser);
    assert_ne!(again, failed.id());
    let err = app.result(&again).get(WAIT).unwrap_err().to_string();
    assert!(err.contains("again"), "{err}");
    browser.type_into("#search", "");
    browser.wait_until("the new task in the list", |b| {
        b.task_rows().contains(&again)
    });
    browser.wait_for_text("count-FAILURE", "2");

    // A Python client's task: its repr arguments are read and sent again.
    open_detail(&browser, &from_python);
    assert_eq!(browser.text_of("detail-args").as_deref(), Some("(20, 22)"));
    let again = retry_by_click(&browser);
    assert_eq!(app.result(&again).get(WAIT).unwrap(), json!(42));

    // Arguments with no JSON form: the page says why, and it stays said.
    open_detail(&browser, &unreadable);
    click_retry(&browser, "error");
    let said = browser.text_of("action-outcome").unwrap_or_default();
    assert!(
        said.starts_with("error: ") && said.contains("infinity"),
        "{said}"
    );
    let (status, body) = task_action(running.addr(), &unreadable, "retry");
    assert_eq!(status, 422, "{body}");

    drop(browser);
    worker.shutdown();
    running.shutdown();
}

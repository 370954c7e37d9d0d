//! The dashboard in a real browser: a worker with events on the in-memory broker runs
//! tasks, headless Chromium opens the page, and the rendered DOM shows the counts by
//! state, the worker, live updates (server-sent events) and a failed task's detail. The
//! retry and revoke endpoints behind the page's buttons are exercised over HTTP.
//!
//! Needs Debian's `chromium` and `chromium-driver` (or `$BRAID_CHROMIUM` and
//! `$BRAID_CHROMEDRIVER`); scripts/test installs them. The browser is driven through
//! chromedriver (W3C WebDriver), so the page's live connection stays open while the test
//! reads its DOM.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
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

#[test]
fn the_page_shows_workers_counts_and_a_task_detail() {
    let url = format!("memory://dashboard-{}", uuid::Uuid::new_v4().simple());
    let app = App::new(&url, Some(&url)).unwrap();
    let running = braid_dashboard::spawn(&app, "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = running.addr();
    let worker = Worker::builder(&app)
        .concurrency(2)
        .events(true)
        .hostname("dash@test")
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
    assert!(dom.contains("data-worker=\"dash@test\""), "{dom}");
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

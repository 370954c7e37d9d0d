//! Redis drops every connection (CLIENT KILL) mid-run, then restarts: the worker and the
//! client reconnect by themselves and every task completes.
//!
//! Runs a Redis server of its own (on a free port, with an append-only file so a restart
//! keeps the data), so the shared one is never disturbed. Needs `redis-server` on PATH.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use braid_taskq::{App, Worker};

#[braid_core::task(name = "reconnect.slow_add")]
fn slow_add(x: u64, y: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(2));
    x + y
}

struct Server {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Server {
    fn start(port: u16, dir: &Path) -> Server {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("this test needs redis-server on PATH (scripts/test installs it)");
        let server = Server {
            child,
            port,
            dir: dir.to_path_buf(),
        };
        server.wait_ready();
        server
    }

    fn cli(&self) -> redis::Connection {
        redis::Client::open(format!("redis://127.0.0.1:{}/0", self.port))
            .unwrap()
            .get_connection()
            .unwrap()
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ready = redis::Client::open(format!("redis://127.0.0.1:{}/0", self.port))
                .unwrap()
                .get_connection_with_timeout(Duration::from_millis(200))
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
            if ready.is_ok() {
                return;
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server (the append-only file keeps everything) and starts it again.
    fn restart(&mut self) {
        let stopped: redis::RedisResult<()> = redis::cmd("SHUTDOWN").query(&mut self.cli());
        // The server closes the connection as it stops: that is the expected answer.
        assert!(stopped.is_err() || stopped.is_ok());
        self.child.wait().unwrap();
        *self = Server::start(self.port, &self.dir.clone());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            if let Err(e) = self.child.kill() {
                eprintln!("could not stop redis-server: {e}");
            }
            if let Err(e) = self.child.wait() {
                eprintln!("could not reap redis-server: {e}");
            }
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn connections_killed_and_server_restarted_mid_run() {
    let dir =
        std::env::temp_dir().join(format!("braid-reconnect-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut server = Server::start(free_port(), &dir);
    let url = format!("redis://127.0.0.1:{}/0?visibility_timeout=2", server.port);
    let app = App::new(&url, Some(&url)).unwrap();
    let first = app
        .delay_many(slow_add::task(), (0..300u64).map(|i| (i, 1)))
        .unwrap();
    let worker = Worker::builder(&app).concurrency(4).start().unwrap();
    while worker.stats().processed < 50 {
        std::thread::sleep(Duration::from_millis(2));
    }
    // Every client connection dropped at once.
    let mut admin = server.cli();
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .arg("SKIPME")
        .arg("yes")
        .query(&mut admin)
        .unwrap();
    assert!(killed > 0);
    let _pubsub: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query(&mut admin)
        .unwrap();
    while worker.stats().processed < 150 {
        std::thread::sleep(Duration::from_millis(2));
    }
    server.restart();
    // The client sends more after the restart; the worker finishes everything.
    let second = app
        .delay_many(slow_add::task(), (0..100u64).map(|i| (i, 2)))
        .unwrap();
    for (i, r) in first.iter().enumerate() {
        assert_eq!(r.get(Duration::from_secs(30)).unwrap(), i as u64 + 1);
    }
    for (i, r) in second.iter().enumerate() {
        assert_eq!(r.get(Duration::from_secs(30)).unwrap(), i as u64 + 2);
    }
    worker.shutdown();
    drop(server);
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        eprintln!("could not remove {}: {e}", dir.display());
    }
}

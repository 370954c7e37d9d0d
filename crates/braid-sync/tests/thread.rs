//! Named threads: joins, panics, timeouts, names.

use std::sync::Arc;
use std::time::Duration;

use braid_sync::{Builder, Error, Event, JoinTimeout, current, spawn};

#[test]
fn join_returns_the_value_and_names_are_kept() {
    let handle = spawn("worker-1", || current().name).unwrap();
    assert_eq!(handle.name(), "worker-1");
    let id = handle.id();
    let handle_debug = format!("{handle:?}");
    assert!(handle_debug.contains("worker-1"), "{handle_debug}");
    assert_eq!(handle.join(), Ok("worker-1".to_string()));
    assert_ne!(id, std::thread::current().id());
}

#[test]
fn current_reports_the_thread_id() {
    let handle = spawn("ids", || (current().id, std::thread::current().id())).unwrap();
    let (ours, std_id) = handle.join().unwrap();
    assert_eq!(ours, std_id);
}

#[test]
fn unnamed_threads_are_numbered() {
    let a = Builder::new().spawn(|| current().name).unwrap();
    let b = Builder::new().spawn(|| current().name).unwrap();
    let (a_name, b_name) = (a.name().to_string(), b.name().to_string());
    assert!(a_name.starts_with("Thread-"), "{a_name}");
    assert!(b_name.starts_with("Thread-"), "{b_name}");
    assert_ne!(a_name, b_name);
    assert_eq!(a.join().unwrap(), a_name);
    assert_eq!(b.join().unwrap(), b_name);
}

#[test]
fn stack_size_is_applied() {
    // A recursion that needs a few megabytes runs on a thread given 16 MiB.
    fn depth(n: u64) -> u64 {
        let pad = std::hint::black_box([n; 64]);
        if n == 0 {
            0
        } else {
            1 + depth(n - 1) + pad[0] - n
        }
    }
    let h = Builder::new()
        .name("deep")
        .stack_size(16 << 20)
        .spawn(|| depth(5_000))
        .unwrap();
    assert_eq!(h.join().unwrap(), 5_000);
}

#[test]
fn a_name_with_nul_is_a_spawn_error() {
    let err = spawn("bad\0name", || ()).unwrap_err();
    assert!(matches!(err, Error::Spawn(_)), "{err:?}");
}

#[test]
fn panic_surfaces_at_join_with_its_message() {
    let handle = spawn("doomed", || -> u8 { panic!("boom {}", 42) }).unwrap();
    let err = handle.join().unwrap_err();
    assert_eq!(
        err,
        Error::Panicked {
            thread: "doomed".into(),
            message: "boom 42".into()
        }
    );
    assert_eq!(err.to_string(), "thread `doomed` panicked: boom 42");
}

#[test]
fn panic_surfaces_at_join_timeout() {
    let handle = spawn("doomed-too", || panic!("static message")).unwrap();
    match handle.join_timeout(Duration::from_secs(30)) {
        Err(JoinTimeout::Failed(Error::Panicked { thread, message })) => {
            assert_eq!(thread, "doomed-too");
            assert_eq!(message, "static message");
        }
        other => panic!("expected a panic, got {other:?}"),
    }
}

#[test]
fn join_timeout_gives_the_handle_back() {
    let release = Arc::new(Event::new());
    let r = release.clone();
    let handle = spawn("slow", move || {
        r.wait();
        7
    })
    .unwrap();
    let handle = match handle.join_timeout(Duration::from_millis(5)) {
        Err(JoinTimeout::TimedOut(handle)) => handle,
        other => panic!("expected a timeout, got {other:?}"),
    };
    assert!(!handle.is_finished());
    assert_eq!(handle.name(), "slow");
    release.set();
    match handle.join_timeout(Duration::from_secs(30)) {
        Ok(v) => assert_eq!(v, 7),
        Err(e) => panic!("expected the value, got {e:?}"),
    }
}

#[test]
fn is_finished_after_the_body_ran() {
    let done = Arc::new(Event::new());
    let d = done.clone();
    let handle = spawn("quick", move || d.set()).unwrap();
    done.wait();
    // Finished is observed through a join with a long timeout, never by polling.
    assert!(handle.join_timeout(Duration::from_secs(30)).is_ok());
}

#[test]
fn detached_threads_run_on() {
    let ran = Arc::new(Event::new());
    let r = ran.clone();
    spawn("daemon", move || r.set()).unwrap().detach();
    assert!(ran.wait_timeout(Duration::from_secs(30)));
}

#[test]
fn current_names_std_threads_too() {
    let named = std::thread::Builder::new()
        .name("std-named".into())
        .spawn(|| current().name)
        .unwrap();
    assert_eq!(named.join().unwrap(), "std-named");
}

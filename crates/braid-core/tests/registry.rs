//! The task registry, through the `#[task]` macro.

use braid_core::{Codec, Error, NoArgs, TaskErrorKind, task};
use serde::{Deserialize, Serialize};

/// A user type crossing the registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    x: f64,
    y: f64,
}

#[task(name = "test.add")]
fn add(x: i64, y: i64) -> i64 {
    x + y
}

#[task]
fn norm(p: Point) -> f64 {
    (p.x * p.x + p.y * p.y).sqrt()
}

/// A public task with no arguments.
#[task(name = "test.hello")]
pub fn hello() -> String {
    "hello".to_string()
}

#[task(name = "test.checked_div")]
fn checked_div(a: i32, b: i32) -> Result<i32, String> {
    if b == 0 {
        Err(format!("cannot divide {a} by zero"))
    } else {
        Ok(a / b)
    }
}

#[task(name = "test.boom")]
fn boom(message: String) -> u8 {
    panic!("{message}")
}

#[task(name = "test.async_double")]
async fn async_double(x: u32) -> u32 {
    tokio::task::yield_now().await;
    x * 2
}

#[task(name = "test.async_boom")]
async fn async_boom() -> u32 {
    tokio::task::yield_now().await;
    panic!("async panic")
}

#[test]
fn the_function_is_still_a_function() {
    assert_eq!(add(2, 3), 5);
    assert_eq!(hello(), "hello");
}

#[test]
fn call_by_name_in_both_codecs() {
    for codec in [Codec::Json, Codec::Binary] {
        let out = braid_core::call("test.add", codec, &codec.encode(&(40, 2)).unwrap()).unwrap();
        assert_eq!(codec.decode::<i64>(&out).unwrap(), 42);
    }
    let out = braid_core::call("test.add", Codec::Json, b"[1, 2]").unwrap();
    assert_eq!(out, b"3");
}

#[test]
fn default_name_is_the_module_path() {
    assert_eq!(norm::NAME, "registry::norm");
    assert!(braid_core::lookup("registry::norm").is_ok());
    let p = Point { x: 3.0, y: 4.0 };
    assert_eq!(norm::task().call((p,)).unwrap(), 5.0);
}

#[test]
fn zero_arguments_accept_empty_list_and_null() {
    assert_eq!(hello::task().call(NoArgs).unwrap(), "hello");
    for args in [&b"[]"[..], b"null"] {
        let out = braid_core::call("test.hello", Codec::Json, args).unwrap();
        assert_eq!(out, b"\"hello\"");
    }
}

#[test]
fn unknown_task_is_a_clear_error() {
    let err = braid_core::call("test.nope", Codec::Json, b"[]").unwrap_err();
    assert_eq!(err, Error::UnknownTask("test.nope".into()));
    assert!(err.to_string().contains("test.nope"));
}

#[test]
fn bad_arguments_name_the_task_and_the_types() {
    let err = braid_core::call("test.add", Codec::Json, b"[1, \"two\"]").unwrap_err();
    match &err {
        Error::DecodeArgs { task, expected, .. } => {
            assert_eq!(task, "test.add");
            assert!(
                expected.contains("x: i64") && expected.contains("y: i64"),
                "{expected}"
            );
        }
        other => panic!("expected a decode error, got {other:?}"),
    }
    let err = braid_core::call("test.add", Codec::Binary, &[0xff, 0xff]).unwrap_err();
    assert!(matches!(err, Error::DecodeArgs { .. }), "{err}");
    let err = braid_core::call("test.add", Codec::Json, b"[1, 2, 3]").unwrap_err();
    assert!(matches!(err, Error::DecodeArgs { .. }), "{err}");
}

#[test]
fn returned_errors_become_task_errors() {
    assert_eq!(checked_div::task().call((9, 3)).unwrap(), 3);
    match checked_div::task().call((1, 0)).unwrap_err() {
        Error::Task(e) => {
            assert_eq!(e.kind, TaskErrorKind::Error);
            assert_eq!(e.task, "test.checked_div");
            assert_eq!(e.message, "cannot divide 1 by zero");
        }
        other => panic!("expected a task error, got {other:?}"),
    }
}

#[test]
fn panics_are_caught_with_their_message() {
    match boom::task().call(("kaboom".to_string(),)).unwrap_err() {
        Error::Task(e) => {
            assert_eq!(e.kind, TaskErrorKind::Panic);
            assert_eq!(e.message, "kaboom");
        }
        other => panic!("expected a task error, got {other:?}"),
    }
}

#[test]
fn async_tasks_run_from_sync_code() {
    let entry = braid_core::lookup("test.async_double").unwrap();
    assert!(entry.is_async());
    assert_eq!(async_double::task().call((21,)).unwrap(), 42);
    match async_boom::task().call(NoArgs).unwrap_err() {
        Error::Task(e) => assert_eq!(e.message, "async panic"),
        other => panic!("expected a task error, got {other:?}"),
    }
}

#[tokio::test]
async fn async_tasks_run_from_async_code_and_blocking_calls_do_not_deadlock() {
    let entry = braid_core::lookup("test.async_double").unwrap();
    let out = entry
        .call_async(Codec::Json, b"[5]".to_vec())
        .await
        .unwrap();
    assert_eq!(out, b"10");
    // A blocking call from inside a runtime runs on a helper thread.
    assert_eq!(async_double::task().call((4,)).unwrap(), 8);
}

#[test]
fn tasks_lists_every_registered_task_sorted() {
    let names: Vec<_> = braid_core::tasks().iter().map(|t| t.name()).collect();
    assert!(names.contains(&"test.add"));
    assert!(names.contains(&braid_core::CHUNK_TASK));
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    let entry = braid_core::lookup("test.add").unwrap();
    assert_eq!(entry.signature(), "fn(x: i64, y: i64) -> i64");
}

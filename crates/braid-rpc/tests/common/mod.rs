//! Services shared by the integration tests.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use braid_rpc::service;
use parking_lot::Mutex;

/// A hang guard: long enough for a loaded 2-core machine, short enough to fail a test.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A calculator with a few ways to fail.
#[service]
pub trait Calculator {
    /// Adds.
    fn add(&self, a: i64, b: i64) -> i64;
    /// Divides, with an error for division by zero.
    fn divide(&self, a: i64, b: i64) -> Result<i64, String>;
    /// Panics.
    fn explode(&self, message: String) -> u8;
    /// Echoes bytes (for size limits).
    fn echo(&self, data: Vec<u8>) -> Vec<u8>;
    /// Makes a reply of `n` bytes.
    fn make(&self, n: u32) -> Vec<u8>;
    /// Returns who called.
    fn whoami(&self) -> String;
}

pub struct Calc;

impl Calculator for Calc {
    fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }
    fn divide(&self, a: i64, b: i64) -> Result<i64, String> {
        a.checked_div(b)
            .ok_or_else(|| "division by zero".to_string())
    }
    fn explode(&self, message: String) -> u8 {
        panic!("{message}")
    }
    fn echo(&self, data: Vec<u8>) -> Vec<u8> {
        data
    }
    fn make(&self, n: u32) -> Vec<u8> {
        vec![7; n as usize]
    }
    fn whoami(&self) -> String {
        let call = braid_rpc::current_call().expect("inside a remote call");
        format!("{}.{} from {}", call.object, call.method, call.peer.ip())
    }
}

/// Counts calls, to tell instances apart.
#[service]
pub trait Counter {
    /// The next number: 1 for the instance's first call.
    fn next(&self) -> u64;
}

#[derive(Default)]
pub struct Count(AtomicU64);

impl Counter for Count {
    fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }
}

/// Methods that wait for the test to let them go.
#[service]
pub trait Gated {
    /// Waits for the gate, then records `note`.
    #[oneway]
    fn record_later(&self, note: String);
    /// Waits for the gate, then answers.
    fn answer_later(&self) -> u32;
}

pub struct Gate {
    pub gate: Mutex<mpsc::Receiver<()>>,
    pub notes: Mutex<mpsc::Sender<String>>,
}

impl Gated for Gate {
    fn record_later(&self, note: String) {
        self.gate
            .lock()
            .recv_timeout(PATIENCE)
            .expect("the test opens the gate");
        self.notes.lock().send(note).expect("the test listens");
    }
    fn answer_later(&self) -> u32 {
        self.gate
            .lock()
            .recv_timeout(PATIENCE)
            .expect("the test opens the gate");
        42
    }
}

/// Calls that wait for one another, to show that they are served at the same time.
#[service]
pub trait Meeting {
    /// Arrives, then waits until `n` calls have arrived in all (at most [`PATIENCE`]);
    /// returns whether they did.
    fn meet(&self, n: u32) -> bool;
}

#[derive(Default)]
pub struct Meet {
    arrived: Mutex<u32>,
    all_here: parking_lot::Condvar,
}

impl Meeting for Meet {
    fn meet(&self, n: u32) -> bool {
        let mut arrived = self.arrived.lock();
        *arrived += 1;
        self.all_here.notify_all();
        self.all_here
            .wait_while_for(&mut arrived, |a| *a < n, PATIENCE);
        *arrived >= n
    }
}

//! Condition and Event.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use braid_sync::{Condition, Event, spawn};

#[test]
fn wait_releases_the_lock_and_wait_for_checks_first() {
    let c = Arc::new(Condition::new(0u32));
    {
        let mut g = c.lock();
        g.wait_for(|v| *v == 0); // true already: no wait
        *g = 1;
    }
    let c2 = c.clone();
    let setter = spawn("setter", move || {
        // Can only lock once the waiter released the lock in its wait.
        let mut g = c2.lock();
        *g = 2;
        c2.notify_all();
    })
    .unwrap();
    let mut g = c.lock();
    g.wait_for(|v| *v == 2);
    assert_eq!(*g, 2);
    drop(g);
    setter.join().unwrap();
}

#[test]
fn wait_for_timeout_gives_the_predicates_last_value() {
    let c = Condition::new(false);
    let mut g = c.lock();
    assert!(!g.wait_for_timeout(|v| *v, Duration::from_millis(2)));
    *g = true;
    assert!(g.wait_for_timeout(|v| *v, Duration::from_millis(2)));
    assert!(!g.wait_timeout(Duration::from_millis(1)), "nobody notifies");
}

#[test]
fn notify_one_wakes_exactly_one() {
    let c = Arc::new(Condition::new(0usize));
    let arrived = Arc::new(Condition::new(0usize));
    let threads: Vec<_> = (0..2)
        .map(|i| {
            let (c, arrived) = (c.clone(), arrived.clone());
            spawn(format!("w{i}"), move || {
                let mut g = c.lock();
                *arrived.lock() += 1;
                arrived.notify_all();
                let start = *g;
                g.wait_for(|v| *v > start);
            })
            .unwrap()
        })
        .collect();
    arrived.lock().wait_for(|n| *n == 2);
    {
        let mut g = c.lock();
        *g += 1;
    }
    assert!(c.notify_one());
    assert_eq!(c.notify_all(), 1, "one was left");
    for t in threads {
        t.join().unwrap();
    }
    assert!(!c.notify_one());
}

#[test]
fn timed_out_wait_is_not_counted_as_woken_later() {
    let c = Condition::new(());
    let mut g = c.lock();
    assert!(!g.wait_timeout(Duration::from_millis(1)));
    drop(g);
    assert_eq!(c.notify_all(), 0);
}

/// Stress: producers and consumers hand over 100k items through a condition with
/// `notify_one`; a lost wake-up would hang the test (it runs under a join timeout).
#[test]
fn stress_condition_has_no_lost_wakeups() {
    const PRODUCERS: u64 = 4;
    const CONSUMERS: u64 = 4;
    const ITEMS: u64 = 25_000; // per producer: 100k in all
    #[derive(Default)]
    struct State {
        items: VecDeque<u64>,
        taken: u64,
    }
    let c = Arc::new(Condition::new(State::default()));
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|i| {
            let c = c.clone();
            spawn(format!("consumer-{i}"), move || {
                let (mut sum, mut count) = (0u64, 0u64);
                loop {
                    let mut g = c.lock();
                    g.wait_for(|s| !s.items.is_empty() || s.taken == PRODUCERS * ITEMS);
                    match g.items.pop_front() {
                        Some(item) => {
                            g.taken += 1;
                            let all = g.taken == PRODUCERS * ITEMS;
                            drop(g);
                            if all {
                                c.notify_all();
                            }
                            sum += item;
                            count += 1;
                        }
                        None => return (sum, count),
                    }
                }
            })
            .unwrap()
        })
        .collect();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let c = c.clone();
            spawn(format!("producer-{p}"), move || {
                for i in 0..ITEMS {
                    c.lock().items.push_back(p * ITEMS + i);
                    c.notify_one();
                }
            })
            .unwrap()
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    let (mut sum, mut count) = (0, 0);
    for consumer in consumers {
        match consumer.join_timeout(Duration::from_secs(60)) {
            Ok((s, n)) => {
                sum += s;
                count += n;
            }
            Err(e) => panic!("a consumer never finished (lost wake-up?): {e:?}"),
        }
    }
    let n = PRODUCERS * ITEMS;
    assert_eq!(count, n);
    assert_eq!(sum, n * (n - 1) / 2);
}

#[test]
fn event_wakes_every_waiter() {
    let e = Arc::new(Event::new());
    let waiters: Vec<_> = (0..4)
        .map(|i| {
            let e = e.clone();
            spawn(format!("ev-{i}"), move || {
                e.wait_timeout(Duration::from_secs(60))
            })
            .unwrap()
        })
        .collect();
    e.set();
    for w in waiters {
        assert!(w.join().unwrap());
    }
    assert!(e.is_set());
    e.clear();
    assert!(!e.wait_timeout(Duration::from_millis(1)));
    assert!(!format!("{e:?}").is_empty());
}

/// Stress: two threads bounce control 20k times through two events (set / wait / clear).
#[test]
fn stress_event_ping_pong() {
    const ROUNDS: usize = 20_000;
    let ping = Arc::new(Event::new());
    let pong = Arc::new(Event::new());
    let (pi, po) = (ping.clone(), pong.clone());
    let other = spawn("pong", move || {
        for _ in 0..ROUNDS {
            pi.wait();
            pi.clear();
            po.set();
        }
    })
    .unwrap();
    for _ in 0..ROUNDS {
        ping.set();
        pong.wait();
        pong.clear();
    }
    other.join().unwrap();
    assert!(!ping.is_set() && !pong.is_set());
}

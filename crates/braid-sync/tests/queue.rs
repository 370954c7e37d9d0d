//! Queue, LifoQueue, PriorityQueue: order, bounds, timeouts, task_done/join, shutdown.

use std::cmp::Reverse;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use braid_sync::{Error, Event, LifoQueue, PriorityQueue, PutError, Queue, spawn};

#[test]
fn orders() {
    let fifo = Queue::new();
    let lifo = LifoQueue::new();
    let prio = PriorityQueue::new();
    let largest = PriorityQueue::new();
    for n in [3, 1, 2] {
        fifo.put(n).unwrap();
        lifo.put(n).unwrap();
        prio.put(n).unwrap();
        largest.put(Reverse(n)).unwrap();
    }
    let drain = |get: &dyn Fn() -> Result<i32, Error>| -> Vec<i32> {
        std::iter::from_fn(|| get().ok()).collect()
    };
    assert_eq!(drain(&|| fifo.try_get()), [3, 1, 2]);
    assert_eq!(drain(&|| lifo.try_get()), [2, 1, 3]);
    assert_eq!(drain(&|| prio.try_get()), [1, 2, 3]);
    assert_eq!(drain(&|| largest.try_get().map(|r| r.0)), [3, 2, 1]);
}

#[test]
fn sizes_and_bounds() {
    let q = Queue::bounded(2);
    assert_eq!(q.maxsize(), 2);
    assert!(q.is_empty() && !q.is_full());
    q.put('a').unwrap();
    q.try_put('b').unwrap();
    assert_eq!(q.qsize(), 2);
    assert!(q.is_full());
    assert_eq!(q.try_put('c'), Err(PutError::Full('c')));
    assert_eq!(
        q.put_timeout('d', Duration::from_millis(2)),
        Err(PutError::Timeout('d'))
    );
    assert_eq!(PutError::Timeout('d').into_inner(), 'd');
    assert_eq!(q.get(), Ok('a'));
    assert!(q.put_timeout('e', Duration::from_millis(2)).is_ok());

    let unbounded = Queue::bounded(0);
    assert_eq!(unbounded.maxsize(), 0);
    for i in 0..1000 {
        unbounded.try_put(i).unwrap();
    }
    assert!(!unbounded.is_full());
    assert_eq!(Queue::<u8>::default().maxsize(), 0);
}

#[test]
fn empty_and_timeout_errors() {
    let q = Queue::<u8>::new();
    assert_eq!(q.try_get(), Err(Error::Empty));
    let d = Duration::from_millis(3);
    assert_eq!(q.get_timeout(d), Err(Error::Timeout(d)));
    assert_eq!(Error::Timeout(d).to_string(), "timed out after 3ms");
}

#[test]
fn a_blocked_put_proceeds_when_room_is_made() {
    let q = Arc::new(Queue::bounded(1));
    q.put(1).unwrap();
    let q2 = q.clone();
    let putter = spawn("putter", move || q2.put(2)).unwrap();
    assert_eq!(q.get(), Ok(1));
    assert_eq!(putter.join().unwrap(), Ok(()));
    assert_eq!(q.get(), Ok(2));
}

#[test]
fn task_done_and_join() {
    let q = Arc::new(Queue::new());
    assert!(q.join_timeout(Duration::ZERO), "nothing put: joined");
    assert_eq!(q.task_done(), Err(Error::TooManyTaskDone));
    q.put(1).unwrap();
    q.put(2).unwrap();
    assert!(!q.join_timeout(Duration::from_millis(2)));
    q.get().unwrap();
    q.task_done().unwrap();
    assert!(
        !q.join_timeout(Duration::from_millis(1)),
        "one still unfinished"
    );
    let q2 = q.clone();
    let worker = spawn("finisher", move || {
        q2.get().unwrap();
        q2.task_done()
    })
    .unwrap();
    q.join();
    assert_eq!(worker.join().unwrap(), Ok(()));
    assert_eq!(q.task_done(), Err(Error::TooManyTaskDone));
}

#[test]
fn shutdown_fails_puts_and_drains_gets() {
    let q = Queue::new();
    q.put(1).unwrap();
    q.put(2).unwrap();
    assert!(!q.is_shutdown());
    q.shutdown(false);
    assert!(q.is_shutdown());
    assert_eq!(q.put(3), Err(PutError::ShutDown(3)));
    assert_eq!(q.try_put(4), Err(PutError::ShutDown(4)));
    assert_eq!(q.get(), Ok(1));
    assert_eq!(q.get_timeout(Duration::from_secs(1)), Ok(2));
    assert_eq!(q.get(), Err(Error::ShutDown));
    assert_eq!(q.try_get(), Err(Error::ShutDown));
    assert_eq!(q.get_timeout(Duration::from_secs(1)), Err(Error::ShutDown));
    // Items taken are still marked done as usual.
    q.task_done().unwrap();
    q.task_done().unwrap();
    assert!(q.join_timeout(Duration::ZERO));
}

#[test]
fn shutdown_wakes_blocked_getters_and_putters() {
    let empty = Arc::new(Queue::<u8>::new());
    let full = Arc::new(Queue::bounded(1));
    full.put(0u8).unwrap();
    let entered = Arc::new(AtomicUsize::new(0));
    let all_in = Arc::new(Event::new());
    let mut getters = Vec::new();
    for i in 0..3 {
        let (q, entered, all_in) = (empty.clone(), entered.clone(), all_in.clone());
        getters.push(
            spawn(format!("getter-{i}"), move || {
                if entered.fetch_add(1, Ordering::SeqCst) == 3 {
                    all_in.set();
                }
                q.get()
            })
            .unwrap(),
        );
    }
    let (q, entered2, all_in2) = (full.clone(), entered.clone(), all_in.clone());
    let putter = spawn("putter", move || {
        if entered2.fetch_add(1, Ordering::SeqCst) == 3 {
            all_in2.set();
        }
        q.put(9)
    })
    .unwrap();
    all_in.wait();
    std::thread::sleep(Duration::from_millis(2)); // let them block (not needed for correctness)
    empty.shutdown(false);
    full.shutdown(false);
    for g in getters {
        assert_eq!(g.join().unwrap(), Err(Error::ShutDown));
    }
    assert_eq!(putter.join().unwrap(), Err(PutError::ShutDown(9)));
    assert_eq!(full.get(), Ok(0), "what was queued still drains");
}

#[test]
fn immediate_shutdown_drops_items_and_releases_join() {
    let dropped = Arc::new(AtomicUsize::new(0));
    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let q = Arc::new(Queue::new());
    for _ in 0..3 {
        assert!(q.put(Counted(dropped.clone())).is_ok());
    }
    let taken = q.get().unwrap();
    let q2 = q.clone();
    let joiner = spawn("joiner", move || q2.join()).unwrap();
    q.shutdown(true);
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        2,
        "the two queued items were dropped"
    );
    assert!(q.is_empty());
    assert!(matches!(q.get(), Err(Error::ShutDown)));
    // join still waits for the item taken before the shutdown.
    assert!(!q.join_timeout(Duration::from_millis(1)));
    drop(taken);
    q.task_done().unwrap();
    joiner.join().unwrap();
}

#[test]
fn lifo_and_priority_share_the_whole_api() {
    let l = LifoQueue::bounded(1);
    l.put(1).unwrap();
    assert_eq!(l.try_put(2), Err(PutError::Full(2)));
    assert_eq!(l.get_timeout(Duration::from_millis(1)), Ok(1));
    l.task_done().unwrap();
    l.join();
    l.shutdown(true);
    assert!(l.is_shutdown());

    let p = PriorityQueue::<u8>::default();
    assert_eq!(p.try_get(), Err(Error::Empty));
    p.shutdown(false);
    assert_eq!(p.put(1), Err(PutError::ShutDown(1)));
    assert!(format!("{p:?}").contains("PriorityQueue"));
}

/// Stress: 4 producers and 4 consumers move 100k distinct items through a small bounded
/// queue; nothing is lost or duplicated, and join returns only after every task_done.
#[test]
fn stress_queue_loses_and_duplicates_nothing() {
    const PRODUCERS: u64 = 4;
    const CONSUMERS: usize = 4;
    const ITEMS: u64 = 25_000;
    const N: u64 = PRODUCERS * ITEMS;
    let q = Arc::new(Queue::bounded(64));
    let done = Arc::new(AtomicUsize::new(0));
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|i| {
            let (q, done) = (q.clone(), done.clone());
            spawn(format!("consumer-{i}"), move || {
                let mut seen = Vec::new();
                while let Ok(item) = q.get() {
                    seen.push(item);
                    done.fetch_add(1, Ordering::SeqCst);
                    q.task_done().unwrap();
                }
                seen
            })
            .unwrap()
        })
        .collect();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let q = q.clone();
            spawn(format!("producer-{p}"), move || {
                for i in 0..ITEMS {
                    q.put(p * ITEMS + i).unwrap();
                }
            })
            .unwrap()
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    q.join();
    assert_eq!(done.load(Ordering::SeqCst) as u64, N, "join returned early");
    q.shutdown(false);
    let mut all = HashSet::new();
    let mut sum = 0u64;
    for c in consumers {
        for item in c.join().unwrap() {
            assert!(all.insert(item), "{item} came out twice");
            sum += item;
        }
    }
    assert_eq!(all.len() as u64, N);
    assert_eq!(sum, N * (N - 1) / 2);
}

/// Stress: two queues bounce one item 20k times between two threads.
#[test]
fn stress_queue_ping_pong() {
    const ROUNDS: u64 = 20_000;
    let (there, back) = (Arc::new(Queue::new()), Arc::new(Queue::new()));
    let (t2, b2) = (there.clone(), back.clone());
    let echo = spawn("echo", move || {
        while let Ok(v) = t2.get() {
            b2.put(v + 1).unwrap();
        }
    })
    .unwrap();
    let mut v = 0u64;
    for _ in 0..ROUNDS {
        there.put(v).unwrap();
        v = back.get().unwrap() + 1;
    }
    there.shutdown(false);
    echo.join().unwrap();
    assert_eq!(v, 2 * ROUNDS);
}

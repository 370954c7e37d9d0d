//! Queues: order, bounds, task_done/join, shutdown, and cancel safety (a cancelled get
//! never loses an item).

use std::sync::Arc;
use std::time::Duration;

use braid_async::{Error, LifoQueue, PriorityQueue, PutError, Queue, gather};

#[tokio::test]
async fn fifo_lifo_and_priority_order() {
    let fifo = Queue::new();
    let lifo = LifoQueue::new();
    let prio = PriorityQueue::new();
    for n in [3, 1, 2] {
        fifo.put(n).await.unwrap();
        lifo.put(n).await.unwrap();
        prio.put(n).await.unwrap();
    }
    let mut got = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..3 {
        got.0.push(fifo.get().await.unwrap());
        got.1.push(lifo.get().await.unwrap());
        got.2.push(prio.get().await.unwrap());
    }
    assert_eq!(got, (vec![3, 1, 2], vec![2, 1, 3], vec![1, 2, 3]));
    assert_eq!(fifo.try_get(), Err(Error::Empty));
}

#[tokio::test]
async fn a_bounded_queue_refuses_and_waits_when_full() {
    let queue = Arc::new(Queue::bounded(2));
    queue.try_put(1).unwrap();
    queue.put(2).await.unwrap();
    assert!(queue.is_full());
    assert_eq!(queue.try_put(3), Err(PutError::Full(3)));
    let waiting = tokio::spawn({
        let queue = queue.clone();
        async move { queue.put(3).await }
    });
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished(), "a put on a full queue waits");
    assert_eq!(queue.get().await, Ok(1));
    waiting.await.unwrap().unwrap();
    assert_eq!(queue.qsize(), 2);
    assert_eq!(queue.maxsize(), 2);
}

#[tokio::test(start_paused = true)]
async fn timeouts_give_the_item_back() {
    let queue = Queue::bounded(1);
    queue.put("first").await.unwrap();
    let refused = queue.put_timeout("second", Duration::from_secs(1)).await;
    assert_eq!(refused, Err(PutError::Timeout("second")));
    assert_eq!(queue.qsize(), 1);
    assert_eq!(queue.get().await, Ok("first"));
    assert_eq!(
        queue.get_timeout(Duration::from_secs(1)).await,
        Err(Error::Timeout(Duration::from_secs(1)))
    );
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_get_loses_no_item() {
    let queue = Arc::new(Queue::<u32>::new());
    // Gets cancelled by a timeout, again and again, while items arrive: every item put
    // must come out exactly once.
    let producer = tokio::spawn({
        let queue = queue.clone();
        async move {
            for n in 0..200 {
                queue.put(n).await.unwrap();
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        }
    });
    let mut got = Vec::new();
    while got.len() < 200 {
        tokio::select! {
            item = queue.get() => got.push(item.unwrap()),
            () = tokio::time::sleep(Duration::from_millis(2)) => {}
        }
    }
    producer.await.unwrap();
    assert_eq!(got, (0..200).collect::<Vec<_>>());
    assert!(queue.is_empty());
}

#[tokio::test]
async fn a_wakeup_for_a_cancelled_getter_goes_to_the_next() {
    let queue = Arc::new(Queue::<u32>::new());
    let mut first = Box::pin(queue.get());
    let second = tokio::spawn({
        let queue = queue.clone();
        async move { queue.get().await }
    });
    // Both getters wait; the first is older.
    assert!(futures_poll_once(first.as_mut()).await.is_none());
    tokio::task::yield_now().await;
    queue.put(7).await.unwrap();
    // The first getter is woken, but is cancelled before it runs.
    drop(first);
    assert_eq!(second.await.unwrap(), Ok(7));
}

/// Polls a future once; `Some` with its output if it was ready.
async fn futures_poll_once<F: std::future::Future + Unpin>(mut future: F) -> Option<F::Output> {
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match std::pin::Pin::new(&mut future).poll(cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        })
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_producers_and_consumers_lose_nothing() {
    let queue = Arc::new(Queue::<u64>::bounded(4));
    let producers = (0..4u64).map(|p| {
        let queue = queue.clone();
        tokio::spawn(async move {
            for i in 0..1000 {
                queue.put(p * 1000 + i).await.unwrap();
            }
        })
    });
    let consumers: Vec<_> = (0..3)
        .map(|_| {
            let queue = queue.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                while let Ok(n) = queue.get().await {
                    got.push(n);
                    queue.task_done().unwrap();
                }
                got
            })
        })
        .collect();
    for producer in gather(producers).await {
        producer.unwrap();
    }
    queue.join().await;
    queue.shutdown(false);
    let mut all: Vec<u64> = Vec::new();
    for consumer in consumers {
        all.extend(consumer.await.unwrap());
    }
    all.sort_unstable();
    assert_eq!(all, (0..4000).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn reserve_keeps_the_item_with_the_caller() {
    let queue = Arc::new(Queue::bounded(1));
    queue.put(1).await.unwrap();
    // A reserve cancelled while the queue is full takes no place and holds no item.
    let cancelled = braid_async::timeout(Duration::from_secs(1), queue.reserve()).await;
    assert!(matches!(cancelled, Err(Error::Timeout(_))));
    assert_eq!(queue.get().await, Ok(1));
    let permit = queue.reserve().await.unwrap();
    assert!(queue.is_full(), "a reserved place counts as taken");
    assert_eq!(queue.try_put(9), Err(PutError::Full(9)));
    permit.put(2).unwrap();
    assert_eq!(queue.get().await, Ok(2));
    let unused = queue.reserve().await.unwrap();
    drop(unused);
    queue.try_put(3).unwrap();
}

#[tokio::test]
async fn task_done_and_join() {
    let queue = Arc::new(Queue::new());
    for n in 0..5 {
        queue.put(n).await.unwrap();
    }
    assert!(!queue.join_timeout(Duration::from_millis(1)).await);
    let worker = tokio::spawn({
        let queue = queue.clone();
        async move {
            for _ in 0..5 {
                queue.get().await.unwrap();
                queue.task_done().unwrap();
            }
        }
    });
    queue.join().await;
    worker.await.unwrap();
    assert_eq!(queue.task_done(), Err(Error::TooManyTaskDone));
}

#[tokio::test]
async fn shutdown_drains_then_fails_and_wakes_everyone() {
    let queue = Arc::new(Queue::bounded(1));
    let getter = {
        let empty = Arc::new(Queue::<u8>::new());
        let waiting = tokio::spawn({
            let empty = empty.clone();
            async move { empty.get().await }
        });
        tokio::task::yield_now().await;
        empty.shutdown(false);
        waiting
    };
    assert_eq!(getter.await.unwrap(), Err(Error::ShutDown));

    queue.put(1).await.unwrap();
    let putter = tokio::spawn({
        let queue = queue.clone();
        async move { queue.put(2).await }
    });
    tokio::task::yield_now().await;
    queue.shutdown(false);
    assert_eq!(putter.await.unwrap(), Err(PutError::ShutDown(2)));
    assert_eq!(queue.try_put(3), Err(PutError::ShutDown(3)));
    assert_eq!(
        queue.get().await,
        Ok(1),
        "items put before the shutdown still come out"
    );
    assert_eq!(queue.get().await, Err(Error::ShutDown));
    assert!(queue.is_shutdown());
}

#[tokio::test]
async fn immediate_shutdown_drops_items_and_releases_join() {
    let queue = Arc::new(Queue::new());
    for n in 0..3 {
        queue.put(n).await.unwrap();
    }
    queue.get().await.unwrap();
    let joiner = tokio::spawn({
        let queue = queue.clone();
        async move { queue.join().await }
    });
    queue.shutdown(true);
    assert!(queue.is_empty());
    queue.task_done().unwrap(); // the one item taken
    joiner.await.unwrap();
    assert_eq!(queue.get().await, Err(Error::ShutDown));
}

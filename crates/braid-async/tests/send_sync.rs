//! Compile-time checks that the public types can cross and be shared between threads.

use braid_async::*;

fn send<T: Send>() {}
fn send_sync<T: Send + Sync>() {}

#[test]
fn public_types_are_send_and_sync() {
    send_sync::<Event>();
    send_sync::<Condition<Vec<u8>>>();
    send_sync::<ConditionGuard<'static, Vec<u8>>>();
    send_sync::<Semaphore>();
    send_sync::<BoundedSemaphore>();
    send_sync::<Permit<'static>>();
    send_sync::<BoundedPermit<'static>>();
    send_sync::<Barrier>();
    send_sync::<Queue<String>>();
    send_sync::<LifoQueue<String>>();
    send_sync::<PriorityQueue<String>>();
    send_sync::<PutPermit<'static, String>>();
    send_sync::<Error>();
    send_sync::<PutError<String>>();
    send::<TaskGroup<String, String>>();
    send_sync::<TaskSpawner<String, String>>();
    send_sync::<TaskGroupError<String>>();
    send_sync::<TaskFailure<String>>();
    send_sync::<Shielded<String>>();
    send::<HandleFuture<String>>();
    send::<AsCompleted<std::future::Ready<u8>>>();
    send::<Waited<std::future::Ready<Result<u8, u8>>>>();
}

/// The futures of the async methods can be spawned on a multi-thread runtime.
#[test]
fn futures_are_send() {
    fn future_send<F: std::future::Future + Send>(_: F) {}
    let queue = Queue::<String>::new();
    let event = Event::new();
    let cond = Condition::new(0u8);
    let semaphore = Semaphore::new(1);
    let barrier = Barrier::new(1);
    future_send(queue.get());
    future_send(queue.put(String::new()));
    future_send(queue.reserve());
    future_send(queue.join());
    future_send(event.wait());
    future_send(cond.lock());
    future_send(async { cond.lock().await.wait().await });
    future_send(async { cond.lock().await.wait_for(|v| *v > 0).await });
    future_send(semaphore.acquire());
    future_send(barrier.wait());
    future_send(gather([async { 1 }]));
    future_send(TaskGroup::<u8, u8>::new().join());
}

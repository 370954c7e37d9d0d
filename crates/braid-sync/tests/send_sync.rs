//! Compile-time checks that the public types can cross and be shared between threads.

use braid_sync::*;

fn send<T: Send>() {}
fn sync<T: Sync>() {}
fn send_sync<T: Send + Sync>() {}

#[test]
fn public_types_are_send_and_sync() {
    send_sync::<Lock<Vec<u8>>>();
    send_sync::<RLock<Vec<u8>>>();
    // A RefCell inside an RLock is shareable: only the owning thread reaches it.
    send_sync::<RLock<std::cell::RefCell<u8>>>();
    send_sync::<Semaphore>();
    send_sync::<BoundedSemaphore>();
    send_sync::<Condition<Vec<u8>>>();
    send_sync::<Event>();
    send_sync::<Barrier>();
    send_sync::<Queue<String>>();
    send_sync::<LifoQueue<String>>();
    send_sync::<PriorityQueue<String>>();
    send_sync::<ThreadPool>();
    send_sync::<ThreadPoolBuilder>();
    send_sync::<Error>();
    send_sync::<PutError<String>>();
    send::<JoinHandle<u8>>();
    send::<JoinTimeout<u8>>();
    send_sync::<ThreadInfo>();
    send_sync::<Builder>();
    sync::<LockGuard<'static, u8>>();
    sync::<Permit<'static>>();
    send_sync::<BoundedPermit<'static>>();
}

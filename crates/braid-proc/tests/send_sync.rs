//! The public types that cross threads are `Send` and `Sync`, checked at compile time.

use braid_proc::{
    Array, Barrier, BoundedSemaphore, Condition, Connection, DictProxy, Event, JoinableQueue,
    ListProxy, Lock, Manager, ManagerClient, ManagerServer, NamespaceProxy, Process, ProcessPool,
    Queue, QueueProxy, RLock, Semaphore, SharedMemory, SimpleQueue, Value,
};

fn send_sync<T: Send + Sync>() {}

#[test]
fn shared_types_are_send_and_sync() {
    send_sync::<Process>();
    send_sync::<ProcessPool>();
    send_sync::<Connection<String>>();
    send_sync::<Queue<Vec<u8>>>();
    send_sync::<JoinableQueue<u64>>();
    send_sync::<SimpleQueue<u64>>();
    send_sync::<Lock>();
    send_sync::<RLock>();
    send_sync::<Semaphore>();
    send_sync::<BoundedSemaphore>();
    send_sync::<Event>();
    send_sync::<Condition>();
    send_sync::<Barrier>();
    send_sync::<Value<f64>>();
    send_sync::<Array<i32>>();
    send_sync::<SharedMemory>();
    send_sync::<Manager>();
    send_sync::<ManagerClient>();
    send_sync::<ManagerServer>();
    send_sync::<DictProxy<String, u64>>();
    send_sync::<ListProxy<u64>>();
    send_sync::<NamespaceProxy>();
    send_sync::<QueueProxy<u64>>();
}

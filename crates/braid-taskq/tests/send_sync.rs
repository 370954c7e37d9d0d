//! The public types can cross threads.

use braid_taskq::{
    App, AsyncResult, CallOptions, Error, GroupResult, Signature, TaskContext, TaskFailure,
    TaskMessage, TaskOptions, Worker, WorkerStats,
};

fn send_sync<T: Send + Sync>() {}

#[test]
fn public_types_are_send_and_sync() {
    send_sync::<App>();
    send_sync::<Worker>();
    send_sync::<AsyncResult<i64>>();
    send_sync::<AsyncResult>();
    send_sync::<GroupResult>();
    send_sync::<Signature>();
    send_sync::<TaskOptions>();
    send_sync::<CallOptions>();
    send_sync::<TaskMessage>();
    send_sync::<TaskContext>();
    send_sync::<TaskFailure>();
    send_sync::<WorkerStats>();
    send_sync::<Error>();
}

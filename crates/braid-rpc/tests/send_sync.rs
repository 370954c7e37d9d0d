//! The public types that cross threads are `Send` and `Sync`, checked at compile time.

use braid_rpc::{
    AsyncResult, Batch, BatchResults, ClientTls, Daemon, DaemonBuilder, DaemonStopper, Error,
    NameServer, Object, Proxy, ServerTls, Uri,
};

fn send_sync<T: Send + Sync>() {}
fn send<T: Send>() {}

#[test]
fn public_types_are_send_and_sync() {
    send_sync::<Proxy>();
    send_sync::<Daemon>();
    send_sync::<DaemonBuilder>();
    send_sync::<DaemonStopper>();
    send_sync::<Object>();
    send_sync::<NameServer>();
    send_sync::<Error>();
    send_sync::<Uri>();
    send_sync::<ServerTls>();
    send_sync::<ClientTls>();
    send_sync::<AsyncResult<String>>();
    send_sync::<BatchResults>();
    send::<Batch>();
}

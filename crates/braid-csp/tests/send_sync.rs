//! Compile-time checks that the public types can cross and be shared between threads, so
//! that the same processes run on every scheduler.

use braid_csp::*;

fn send<T: Send>() {}
fn send_sync<T: Send + Sync>() {}

#[test]
fn public_types_are_send_and_sync() {
    send_sync::<Channel<String>>();
    send_sync::<Reader<String>>();
    send_sync::<Writer<String>>();
    send_sync::<Error>();
    send_sync::<WriteError<String>>();
    send_sync::<Scheduler>();
    send_sync::<NameServer>();
    send_sync::<ChannelHost>();
    send_sync::<SpawnHandle<String>>();
    send::<Process<String>>();
    send::<Parallel<String>>();
    send::<Sequence<String>>();
    send::<Alternation<'static, String>>();
    send::<Read<'static, String>>();
    send::<Write<'static, String>>();
    send::<Select<'static, 'static, String>>();
}

/// The futures of channel operations and selects can be held across an await in a
/// process that a multi-thread scheduler moves between threads.
#[test]
fn operation_futures_are_send() {
    fn assert_send<F: std::future::Future + Send>(_: F) {}
    let ch = Channel::<u8>::new();
    let (out, input) = (ch.writer(), ch.reader());
    assert_send(out.write(1));
    assert_send(input.read());
    let mut alt = Alternation::new().input(&input, |v| v);
    assert_send(alt.select());
    assert_send(Parallel::new([process(async { Ok(()) })]).into_future());
}

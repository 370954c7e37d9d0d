//! Communicating sequential processes, like PyCSP: processes that share nothing and talk
//! over channels, with poison and retire to shut a network down, alternation to wait on
//! several channels at once, and channels that reach across the network.
//!
//! | PyCSP | braid-csp |
//! |---|---|
//! | `@process def p(cin, cout): ...` | a function returning [`process`]`(async move { ... })`, or [`blocking_process`] for a plain blocking function |
//! | `Channel()`, `Channel(buffer=N)`, `.reader()`, `.writer()` | [`Channel::new`], [`Channel::buffered`], [`Channel::reader`], [`Channel::writer`] (clone an end to add a reader or writer) |
//! | `cin()`, `cout(x)` | [`Reader::read`], [`Writer::write`] (`.await`), or [`Reader::blocking_read`], [`Writer::blocking_write`] |
//! | `poison(c)`, `retire(c)`, `ChannelPoisonException`, `ChannelRetireException` | [`Reader::poison`], [`Reader::retire`] (and on [`Writer`]), [`Error::Poisoned`], [`Error::Retired`] |
//! | `Parallel`, `Sequence`, `Spawn`, `shutdown` | [`Parallel`], [`Sequence`], [`spawn`], [`shutdown`] |
//! | `Alternation`, `AltSelect`/`PriSelect`, `FairSelect` with `InputGuard`, `OutputGuard`, `TimeoutGuard`, `SkipGuard` | [`Alternation`] with [`input`](Alternation::input), [`output`](Alternation::output), [`timeout`](Alternation::timeout), [`skip`](Alternation::skip); [`pri_select`](Alternation::pri_select), [`fair_select`](Alternation::fair_select), [`random_select`](Alternation::random_select) |
//! | `pycsp.greenlets` / `pycsp.parallel` | [`Scheduler::Cooperative`] (the default) / [`Scheduler::Threads`], and [`Scheduler::MultiThread`] |
//! | remote channels, name server | [`ChannelHost`], [`NameServer`], [`connect_reader`], [`connect_writer`] |
//!
//! A process is a future (or a blocking function) that owns the channel ends it uses.
//! When it ends, those ends retire; if it ended with an error other than
//! [`Error::Retired`] (poison included), they are poisoned instead, so one poisoned
//! channel stops a whole network: every process's next operation fails, it returns the
//! error with `?`, and its own channels are poisoned in turn. An end that is dropped
//! retires, so a network never waits for ever on a channel that nobody can use.
//!
//! ```
//! use braid_csp::{Channel, Parallel, Process, Reader, Writer, process};
//!
//! fn numbers(out: Writer<u64>) -> Process<u64> {
//!     process(async move {
//!         let mut i = 0;
//!         loop {
//!             out.write(i).await?; // fails with Poisoned once the printer has enough
//!             i += 1;
//!         }
//!     })
//! }
//!
//! fn square(input: Reader<u64>, out: Writer<u64>) -> Process<u64> {
//!     process(async move {
//!         loop {
//!             let x = input.read().await?;
//!             out.write(x * x).await?;
//!         }
//!     })
//! }
//!
//! fn first(input: Reader<u64>, n: usize) -> Process<u64> {
//!     process(async move {
//!         let mut sum = 0;
//!         for _ in 0..n {
//!             sum += input.read().await?;
//!         }
//!         input.poison(); // shuts the whole pipeline down
//!         Ok(sum)
//!     })
//! }
//!
//! let (a, b) = (Channel::new(), Channel::new());
//! let results = Parallel::new([
//!     numbers(a.writer()),
//!     square(a.reader(), b.writer()),
//!     first(b.reader(), 4),
//! ])
//! .run()
//! .unwrap();
//! // The first two stopped on poison (None); the last returned 0 + 1 + 4 + 9.
//! assert_eq!(results, [None, None, Some(14)]);
//! ```
#![forbid(unsafe_code)]

mod alt;
mod block;
mod channel;
mod coop;
mod core;
mod error;
mod executor;
mod net;
mod parallel;
mod party;
mod process;
mod scheduler;
mod timer;

pub use alt::{Alternation, Select};
pub use channel::{Channel, Read, Reader, Write, Writer};
pub use error::{Error, Result, WriteError};
pub use net::{
    ChannelHost, NameServer, blocking_connect_reader, blocking_connect_writer, connect_reader,
    connect_writer,
};
pub use parallel::{Parallel, Sequence, SpawnHandle, shutdown, spawn};
pub use process::{Process, blocking_process, process};
pub use scheduler::Scheduler;

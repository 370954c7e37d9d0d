//! SCOOP's futures for braid: `map`, `submit`, `map_reduce`, `map_scan` and shared
//! constants over any [`braid_core::Executor`], from a thread pool to a cluster.
//!
//! | SCOOP | braid-dmap |
//! |---|---|
//! | `futures.map`, `futures.map_as_completed` | [`Dmap::map`], [`Dmap::map_chunked`], [`Dmap::map_as_completed`] |
//! | `futures.submit`, `Future`, `futures.as_completed` | [`Dmap::submit`], [`Future`], [`as_completed`] |
//! | `futures.mapReduce`, `futures.mapScan` | [`Dmap::map_reduce`] (tree reduction), [`Dmap::map_scan`] (inclusive, correct) |
//! | `shared.setConst`, `shared.getConst` | [`Dmap::set_const`], [`get_const`] |
//! | `python -m scoop -n N prog.py` | `braid dmap -n N prog` and [`Dmap::from_env`] |
//!
//! A [`Dmap`] sends each call, with its context (which Dmap, where its constants are),
//! to an executor: [`Dmap::threads`], [`Dmap::processes`] (re-executed workers: call
//! `braid::init()` first in `main`), [`Dmap::cluster`] (task-queue workers on Redis),
//! or any executor given to [`Dmap::new`]. Tasks are registered functions
//! (`#[braid::task]`); arguments and results travel as postcard bytes.
//!
//! What can go wrong ends in an error, never a hang: an unknown task fails at the call;
//! arguments that do not decode fail with the task's name and expected types; work whose
//! worker died runs again elsewhere (up to [`DmapBuilder::max_retries`]); a task that
//! waits on work it submitted and no worker has started runs that work itself, so
//! nested submissions cannot starve a pool.
//!
//! ```
//! use braid_dmap::{Dmap, get_const};
//!
//! #[braid_core::task(name = "doc.dmap.scale")]
//! fn scale(x: f64) -> Result<f64, braid_dmap::Error> {
//!     Ok(x * *get_const::<f64>("factor")?)
//! }
//!
//! #[braid_core::task(name = "doc.dmap.add")]
//! fn add(a: f64, b: f64) -> f64 {
//!     a + b
//! }
//!
//! let dmap = Dmap::threads(2).unwrap();
//! dmap.set_const("factor", &10.0).unwrap();
//! let scaled: Vec<f64> = dmap.map(scale::task(), [1.0, 2.0]).collect::<Result<_, _>>().unwrap();
//! assert_eq!(scaled, [10.0, 20.0]);
//! assert_eq!(dmap.map_reduce(scale::task(), add::task(), [1.0, 2.0, 3.0]).unwrap(), 60.0);
//! assert_eq!(dmap.map_scan(scale::task(), add::task(), [1.0, 2.0, 3.0]).unwrap(), [10.0, 30.0, 60.0]);
//! assert!(dmap.set_const("factor", &2.0).is_err()); // set once
//! ```
#![forbid(unsafe_code)]

mod context;
mod dmap;
mod envelope;
mod error;
mod future;
mod store;
mod worker;

pub use dmap::{
    BROKER_ENV, Constants, DEFAULT_QUEUE, Dmap, DmapBuilder, Map, MapAsCompleted, Nested,
    PARALLELISM_ENV, PROCESSES_ENV, QUEUE_ENV, get_const,
};
pub use error::{Error, Result};
pub use future::{AsCompleted, Future, as_completed};
pub use store::constant_fetches;
pub use worker::{CONCURRENCY_ENV, WORKER_ENV};

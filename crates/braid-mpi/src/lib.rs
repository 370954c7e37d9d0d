//! MPI for braid, shaped like mpi4py: ranks, point-to-point messages of any serde value
//! or of typed numeric buffers, non-blocking requests, every collective with its
//! v-variants, reductions with MPI's operations and user closures, communicator `dup` and
//! `split`, and cartesian topologies.
//!
//! The backend is shared memory on one machine, with nothing to install: a
//! single-producer single-consumer byte ring for every ordered pair of ranks in one
//! memfd segment; a waiting rank spins briefly, then sleeps on a futex. Ranks are
//!
//! - processes started by `braid run -n N PROGRAM ARGS...` (the program calls [`init`],
//!   or [`run`]), or by [`launch`] from Rust;
//! - or threads of one process, for tests and small jobs: [`run_threads`].
//!
//! | mpi4py | braid-mpi |
//! |---|---|
//! | `comm.send(obj, dest, tag)` / `comm.recv(source, tag)` | [`Comm::send`] / [`Comm::recv`] |
//! | `comm.Send(buf, ...)` / `comm.Recv(buf, ...)` | [`Comm::send_buf`] / [`Comm::recv_buf`] |
//! | `isend`, `irecv`, `Isend`, `Irecv`, `wait`, `test`, `Waitall`, `Waitany` | [`Comm::isend`], [`Comm::irecv`], [`Comm::isend_buf`], [`Comm::irecv_buf`], [`Request`], [`wait_all`], [`wait_any`] |
//! | `sendrecv`, `Sendrecv`, `probe`, `iprobe` | [`Comm::sendrecv`], [`Comm::sendrecv_buf`], [`Comm::probe`], [`Comm::iprobe`] |
//! | `bcast`, `scatter`, `gather`, `allgather`, `alltoall` | the same names; buffers: `bcast_buf`, ..., `scatterv_buf`, `gatherv_buf`, `allgatherv_buf` |
//! | `reduce`, `allreduce`, `scan`, `exscan` with `MPI.SUM`, ... | the same names with [`Op::sum`], ..., [`Op::user`]; buffers: `reduce_buf`, ... |
//! | `Dup`, `Split`, `Create_cart`, `Compute_dims` | [`Comm::dup`], [`Comm::split`], [`Comm::create_cart`], [`dims_create`] |
//! | `MPI.Wtime()`, `MPI.Get_processor_name()` | [`wtime`], [`processor_name`] |
//!
//! A waiting rank spins (yielding its core) for 200 µs before it sleeps; set
//! `BRAID_MPI_SPIN_US` ([`SPIN_ENV`]) to change that, e.g. to 0 on a machine with more
//! ranks than cores.
//!
//! A rank that panics or dies aborts the job: every other rank's waiting call returns
//! [`Error::Aborted`] within a bounded time instead of hanging; a rank waiting on one
//! that has finished gets [`Error::PeerGone`]. A receive into a buffer of the wrong type
//! or size is a typed error and the message stays queued.
//!
//! ```
//! use braid_mpi::{ANY_SOURCE, ANY_TAG, Op};
//!
//! let totals = braid_mpi::run_threads(4, |comm| -> Result<f64, braid_mpi::Error> {
//!     if comm.rank() == 0 {
//!         let mut total = 0.0;
//!         for _ in 1..comm.size() {
//!             let x: f64 = comm.recv(ANY_SOURCE, ANY_TAG)?;
//!             total += x;
//!         }
//!         assert_eq!(total, 6.0);
//!     } else {
//!         comm.send(&(comm.rank() as f64), 0, 7)?;
//!     }
//!     let mine = [comm.rank() as f64; 3];
//!     let mut sum = [0.0; 3];
//!     comm.allreduce_buf(&mine, &mut sum, Op::sum())?;
//!     Ok(sum[0])
//! })
//! .unwrap();
//! assert!(totals.into_iter().all(|t| t.unwrap() == 6.0));
//! ```
#![deny(unsafe_op_in_unsafe_fn)]

mod collective;
mod comm;
mod element;
mod engine;
mod error;
mod launch;
mod op;
mod segment;
mod topology;
mod world;

pub use comm::{
    ANY_SOURCE, ANY_TAG, Comm, Request, Source, Status, TagMatch, test_all, wait_all, wait_any,
};
pub use element::{Element, ElementKind, Loc};
pub use engine::SPIN_ENV;
pub use error::{Error, Result};
pub use launch::{JobOutcome, Launch, launch};
pub use op::{Builtin, Op, Reduce};
pub use topology::{CartComm, dims_create};
pub use world::{
    ENV_FD, ENV_RANK, ENV_SIZE, init, launched, processor_name, run, run_threads, wtick, wtime,
};

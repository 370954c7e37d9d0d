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
//! | a large numpy array (huge pages from 4 MiB) | [`buffer`] |
//!
//! A waiting rank polls for a few microseconds, then spins yielding its core, for 200 µs
//! in all before it sleeps; set
//! `BRAID_MPI_SPIN_US` ([`SPIN_ENV`]) to change that, e.g. to 0 on a machine with more
//! ranks than cores.
//!
//! A broadcast or reduction buffer of 1 MiB or more goes from rank to rank by single-copy
//! hand-off: with cross-memory attach (`process_vm_writev`/`process_vm_readv`), the sending
//! rank writes half of it straight into the receiver's buffer while the receiver reads the
//! other half, so each byte is copied once, by two cores at a time, instead of twice
//! through the rings; in a reduction each side combines its half (the sender reads the
//! receiver's running result, folds its own value in and writes it back). Where the system refuses (a seccomp filter, Yama's ptrace rules
//! beyond the launcher's children), the part goes through the rings and the rank stops
//! trying; `BRAID_MPI_SINGLE_COPY=0` ([`SINGLE_COPY_ENV`]) turns it off. A buffer of
//! another type or length than the root's fails on both sides of that hand-off.
//!
//! A rank that panics or dies aborts the job: every other rank's waiting call returns
//! [`Error::Aborted`] within a bounded time instead of hanging; a rank waiting on one
//! that has finished gets [`Error::PeerGone`]. A receive into a buffer of the wrong type
//! or size is a typed error and the message stays queued.
//!
//! # The Open MPI backend (cargo feature `mpi`)
//!
//! With the feature `mpi` (`braid-mpi = { ..., features = ["mpi"] }`, or the facade's
//! `openmpi`), the same program also runs under `mpirun`, on Open MPI through the `mpi`
//! crate (rsmpi). Building it needs an MPI library and libclang (Debian: `apt install
//! libopenmpi-dev openmpi-bin libclang-dev`); without the feature nothing of MPI is built
//! or linked. [`init`] (and [`run`], [`launched`]) pick the backend: a process started by
//! `mpirun` (`OMPI_COMM_WORLD_SIZE`, `PMIX_RANK` or `PMI_RANK` set, [`ENV_FD`] not) joins
//! the MPI job; one started by `braid run` or [`launch`] uses shared memory.
//! [`Comm::backend`] says which.
//!
//! ```sh
//! mpirun -n 4 target/release/my-program                    # as root: --allow-run-as-root
//! mpirun -n 1 target/release/my-program : -n 1 python peer.py   # with an mpi4py rank
//! ```
//!
//! What differs on that backend:
//!
//! - Buffers (`send_buf`, `recv_buf`, `isend_buf`, every `*_buf` collective) are MPI's
//!   own typed calls (`MPI_Send`, `MPI_Recv`, `MPI_Bcast`, `MPI_Scatterv`,
//!   `MPI_Allreduce`, `MPI_Exscan`, ...) with the element's MPI datatype and the caller's
//!   tag, so an mpi4py rank's `Send`, `Recv`, `Bcast`, `Allreduce`, ... match them. SUM,
//!   PROD, MIN and MAX of numbers and LAND, LOR, BAND and BOR of integers are MPI's
//!   built-in operations; MAXLOC/MINLOC of [`Loc`] (an MPI struct of the value and an
//!   `i64`, not mpi4py's `DOUBLE_INT`), LAND/LOR of floats and [`Op::user`] closures run as
//!   MPI user operations, with the closure's commutativity.
//! - Objects (`send`, `recv`, `bcast`, `reduce`, ...) travel as MPI byte messages of their
//!   postcard encoding, not as pickles, so they do not interoperate with mpi4py's
//!   lower-case calls (a pickle arrives here as a buffer). Their tags are moved into the
//!   upper half of `MPI_TAG_UB`, which is how a receive tells objects from buffers; tags
//!   must therefore be below `(MPI_TAG_UB + 1) / 2` (2^30 with Open MPI 4's default
//!   transport).
//! - MPI messages do not carry their element type. A receive probes first and checks the
//!   size: too many elements is [`Error::Truncated`], bytes that are no whole number of
//!   elements [`Error::NotWholeElements`], and the message stays queued; a buffer of
//!   another type with a fitting size is received as it is (as in MPI), never reported as
//!   [`Error::TypeMismatch`]. A probed buffer's [`Status::element`] is `None`: use
//!   [`Status::count_of`]. In a buffer collective every rank must pass the root's type and
//!   length, as MPI requires: what one rank can check (lengths, counts, roots) is an error
//!   before MPI is called, a mismatch between ranks is not detected.
//! - `send` of an object returns at once and completes in the background (before
//!   `MPI_Finalize` at the latest), as on shared memory; `send_buf` is `MPI_Send` and may
//!   wait for the receiver. `irecv`/`irecv_buf` take their message when tested or waited
//!   for, so a large blocking `send_buf` towards a rank that is itself blocked in a send
//!   can deadlock where MPI's posted receives would not: use `isend_buf`/`sendrecv_buf`.
//!   A reduction may wait for the root, as MPI allows.
//! - A thread that panics calls `MPI_Abort` (a panic hook installed by [`init`]), so
//!   `mpirun` ends the job with a failure instead of hanging; [`Comm::abort`] is
//!   `MPI_Abort` and does not return. [`Error::Aborted`] and [`Error::PeerGone`] do not
//!   occur: `mpirun` ends a job whose rank died. `MPI_Finalize` runs when the process
//!   exits. Errors of MPI calls are [`Error::Mpi`].
//! - Every MPI call of a process is made under one lock (`MPI_THREAD_SERIALIZED`);
//!   [`wtime`], [`wtick`] and [`processor_name`] are MPI's; `dup`, `split` and
//!   `create_cart` (and [`CartComm`]'s coordinates and shifts) are MPI communicator calls.
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

/// Sends a public method of [`Comm`] to the Open MPI backend when the communicator is
/// one (a no-op without the feature `mpi`).
macro_rules! on_mpi {
    ($comm:expr, $m:ident => $call:expr) => {
        #[cfg(feature = "mpi")]
        if let Some($m) = $comm.mpi() {
            return $call;
        }
    };
}

mod collective;
mod comm;
mod element;
mod engine;
mod error;
mod handoff;
mod launch;
mod op;
#[cfg(feature = "mpi")]
mod openmpi;
mod segment;
mod topology;
mod world;

pub use comm::{
    ANY_SOURCE, ANY_TAG, BackendKind, Comm, Request, Source, Status, TagMatch, test_all, wait_all,
    wait_any,
};
pub use element::{Element, ElementKind, Loc, buffer};
pub use engine::SPIN_ENV;
pub use error::{Error, Result};
pub use handoff::SINGLE_COPY_ENV;
pub use launch::{JobOutcome, Launch, launch};
pub use op::{Builtin, Op, Reduce};
pub use topology::{CartComm, dims_create};
pub use world::{
    ENV_FD, ENV_RANK, ENV_SIZE, init, launched, processor_name, run, run_threads, wtick, wtime,
};

//! mpi4py's hello world: every rank says who it is.
//!
//! `cargo run --example ch3_mpi_hello_world` runs 4 ranks as threads;
//! `braid run -n 4 target/debug/examples/ch3_mpi_hello_world` runs them as processes.

use braid::mpi::{self, Comm};

fn hello(comm: Comm) -> Result<(), mpi::Error> {
    println!(
        "hello world from process {} of {} on {}",
        comm.rank(),
        comm.size(),
        mpi::processor_name()
    );
    comm.barrier()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();
    for result in mpi::run(4, hello)? {
        result?;
    }
    Ok(())
}

//! Collective broadcast: rank 0 shares a value with every rank (`comm.bcast`), then a
//! buffer of doubles (`comm.Bcast`).

use braid::mpi::{self, Comm};

fn broadcast(comm: Comm) -> Result<(), mpi::Error> {
    let variable = (comm.rank() == 0).then_some(100);
    let variable: i32 = comm.bcast(variable, 0)?;
    println!("process = {} variable shared = {variable}", comm.rank());
    let mut buffer = if comm.rank() == 0 {
        vec![1.5f64; 8]
    } else {
        vec![0.0; 8]
    };
    comm.bcast_buf(&mut buffer, 0)?;
    println!("process = {} buffer = {buffer:?}", comm.rank());
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();
    for result in mpi::run(4, broadcast)? {
        result?;
    }
    Ok(())
}

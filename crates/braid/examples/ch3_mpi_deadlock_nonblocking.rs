//! Fixing the deadlock with non-blocking calls: each rank starts its send (`isend`) and
//! its receive (`irecv`), then waits for both.

use braid::mpi::{self, Comm};

fn exchange(comm: Comm) -> Result<(), mpi::Error> {
    let partner = match comm.rank() {
        1 => 5,
        5 => 1,
        _ => return Ok(()),
    };
    let receive = comm.irecv::<Vec<i64>>(partner, 0)?;
    let send = comm.isend(&vec![comm.rank() as i64; 10], partner, 0)?;
    let received = receive.wait()?;
    send.wait()?;
    println!("rank {} received {received:?}", comm.rank());
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();
    for result in mpi::run(6, exchange)? {
        result?;
    }
    Ok(())
}

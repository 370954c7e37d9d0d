//! Fixing the deadlock with `sendrecv`: ranks 1 and 5 exchange in one call that sends
//! and receives at once, so neither waits for the other to receive first.

use braid::mpi::{self, Comm};

fn exchange(comm: Comm) -> Result<(), mpi::Error> {
    let partner = match comm.rank() {
        1 => 5,
        5 => 1,
        _ => return Ok(()),
    };
    let message = format!("greetings from rank {}", comm.rank());
    let received: String = comm.sendrecv(&message, partner, 0, partner, 0)?;
    println!("rank {} received \"{received}\"", comm.rank());
    // Buffers far larger than the shared-memory ring, both ways at once.
    let send = vec![comm.rank() as f64; 4 << 20];
    let mut recv = vec![0.0f64; 4 << 20];
    comm.sendrecv_buf(&send, partner, 1, &mut recv, partner, 1)?;
    println!(
        "rank {} received {} doubles, all {}",
        comm.rank(),
        recv.len(),
        recv[0]
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();
    for result in mpi::run(6, exchange)? {
        result?;
    }
    Ok(())
}

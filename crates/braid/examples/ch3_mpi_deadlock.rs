//! The deadlock: ranks 1 and 5 each wait to receive from the other before sending. With
//! blocking `recv` both would wait forever; here each looks for a message with `iprobe`
//! for a while, finds none, and reports the deadlock instead of hanging. The fixes are in
//! `ch3_mpi_deadlock_sendrecv` and `ch3_mpi_deadlock_nonblocking`.

use std::time::{Duration, Instant};

use braid::mpi::{self, Comm};

fn receive_first(comm: Comm) -> Result<(), mpi::Error> {
    let partner = match comm.rank() {
        1 => 5,
        5 => 1,
        _ => return comm.barrier(),
    };
    let started = Instant::now();
    let mut arrived = false;
    while started.elapsed() < Duration::from_millis(200) {
        if comm.iprobe(partner, 0)?.is_some() {
            arrived = true;
            break;
        }
        std::thread::yield_now();
    }
    if arrived {
        println!("rank {} got a message: no deadlock", comm.rank());
    } else {
        println!(
            "rank {} waits to receive from rank {partner}, which waits to receive from it: deadlock",
            comm.rank()
        );
    }
    comm.barrier()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();
    for result in mpi::run(6, receive_first)? {
        result?;
    }
    Ok(())
}

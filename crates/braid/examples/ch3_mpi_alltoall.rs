//! Collective all-to-all: each rank sends `(rank + 1) * (j + 1)` to rank `j`
//! (`comm.Alltoall` with integer buffers).

use braid::mpi::{self, Comm};

fn shuffle(comm: Comm) -> Result<(), mpi::Error> {
    let n = comm.size();
    let send: Vec<i64> = (0..n)
        .map(|j| ((comm.rank() + 1) * (j + 1)) as i64)
        .collect();
    let mut recv = vec![0i64; n];
    comm.alltoall_buf(&send, &mut recv)?;
    println!(
        "process {} sending {send:?} receiving {recv:?}",
        comm.rank()
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();
    for result in mpi::run(4, shuffle)? {
        result?;
    }
    Ok(())
}

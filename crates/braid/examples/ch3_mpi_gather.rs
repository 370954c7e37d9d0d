//! Collective gather: every rank sends (rank + 1)^2 to rank 0 (`comm.gather`), and every
//! rank gets everyone's rank (`comm.allgather`).

use braid::mpi::{self, Comm};

fn collect(comm: Comm) -> Result<(), mpi::Error> {
    let data = (comm.rank() + 1).pow(2);
    if let Some(all) = comm.gather(&data, 0)? {
        for (i, value) in all.iter().enumerate().skip(1) {
            println!("rank 0 receiving data {value} from process {i}");
        }
    }
    let ranks = comm.allgather(&comm.rank())?;
    println!("process {} sees ranks {ranks:?}", comm.rank());
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();
    for result in mpi::run(4, collect)? {
        result?;
    }
    Ok(())
}

//! Reduction: element-wise sums of every rank's array at rank 0 (`comm.Reduce` with
//! `MPI.SUM`), a maximum with its location (`MPI.MAXLOC`), a running sum (`comm.scan`),
//! and a user-defined operation.

use braid::mpi::{self, Comm, Loc, Op};

fn reduce(comm: Comm) -> Result<(), mpi::Error> {
    let r = comm.rank();
    let array: Vec<i32> = (0..3).map(|i| (r * 3 + i) as i32).collect();
    let mut sum = vec![0i32; 3];
    comm.reduce_buf(&array, (r == 0).then_some(&mut sum[..]), Op::sum(), 0)?;
    if r == 0 {
        println!("on task 0, after Reduce: sum = {sum:?}");
    }
    let noisy = [3.5, 9.25, 1.0, 9.25][r % 4];
    let best = comm.allreduce(&Loc::new(noisy, r as i64), Op::maxloc())?;
    let running = comm.scan(&(r + 1), Op::sum())?;
    let word = comm.allreduce(
        &format!("{r}"),
        Op::user(|a: &String, b: &String| format!("{a}-{b}"), false),
    )?;
    println!(
        "process {r}: max {} at rank {}, running sum {running}, joined in rank order \"{word}\"",
        best.value, best.index
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();
    for result in mpi::run(4, reduce)? {
        result?;
    }
    Ok(())
}

//! Collective scatter: rank 0 deals one item to every rank (`comm.scatter`), then uneven
//! blocks of a buffer (`comm.Scatterv`).

use braid::mpi::{self, Comm};

fn deal(comm: Comm) -> Result<(), mpi::Error> {
    let n = comm.size();
    let items = (comm.rank() == 0).then(|| (1..=n).map(|i| i * i).collect());
    let mine: usize = comm.scatter(items, 0)?;
    println!("process = {} variable = {mine}", comm.rank());

    let counts: Vec<usize> = (1..=n).collect();
    let displs: Vec<usize> = counts
        .iter()
        .scan(0, |at, c| {
            let start = *at;
            *at += c;
            Some(start)
        })
        .collect();
    let data: Vec<i32> = (0..counts.iter().sum::<usize>() as i32).collect();
    let mut block = vec![0i32; counts[comm.rank()]];
    let send = (comm.rank() == 0).then_some((&data[..], &counts[..], &displs[..]));
    comm.scatterv_buf(send, &mut block, 0)?;
    println!("process = {} block = {block:?}", comm.rank());
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();
    for result in mpi::run(4, deal)? {
        result?;
    }
    Ok(())
}

//! The MPI recipe: four ranks (threads on the shared-memory backend) pass a token around
//! a ring, scatter work, and sum it with a reduction; a cartesian grid finds neighbours.

use braid::mpi::{self, Comm, Op};

fn ranks(comm: Comm) -> Result<(u64, usize, u64), mpi::Error> {
    let (r, n) = (comm.rank(), comm.size());
    // A token around the ring, each rank adding its number.
    let token: u64 = if r == 0 {
        comm.send(&0u64, 1, 0)?;
        comm.recv(n - 1, 0)?
    } else {
        let t: u64 = comm.recv(r - 1, 0)?;
        comm.send(&(t + r as u64), (r + 1) % n, 0)?;
        t + r as u64
    };
    // Scatter 1..=1000 in blocks, sum each block, reduce the sums.
    let all: Vec<u64> = (1..=1000).collect();
    let mut block = vec![0u64; 1000 / n];
    comm.scatter_buf((r == 0).then_some(&all[..]), &mut block, 0)?;
    let total = comm.allreduce(&block.iter().sum::<u64>(), Op::sum())?;
    // A 2x2 periodic grid: the rank one step along each dimension.
    let dims = mpi::dims_create(n, &[0, 0])?;
    let grid = comm
        .create_cart(&dims, &[true, true], false)?
        .ok_or_else(|| mpi::Error::InvalidArgument("every rank is on the grid".into()))?;
    let (_, right) = grid.shift(1, 1)?;
    Ok((token, right.unwrap_or(usize::MAX), total))
}

pub(super) fn run() -> Result<String, String> {
    let results = mpi::run_threads(4, ranks).map_err(|e| e.to_string())?;
    let mut outs = Vec::new();
    for (r, result) in results.into_iter().enumerate() {
        outs.push(result.map_err(|e| format!("rank {r}: {e}"))?);
    }
    let (token, _, total) = outs[0];
    if token != 6 {
        return Err(format!("the token came back as {token}, expected 6"));
    }
    if outs.iter().any(|o| o.2 != 500_500) {
        return Err(format!("the reduced sum is {total}, expected 500500"));
    }
    let rights: Vec<usize> = outs.iter().map(|o| o.1).collect();
    if rights != [1, 0, 3, 2] {
        return Err(format!("grid neighbours {rights:?}, expected [1, 0, 3, 2]"));
    }
    Ok(format!(
        "4 ranks: ring token {token}, allreduce of scattered 1..=1000 = {total}, 2x2 grid neighbours {rights:?}"
    ))
}

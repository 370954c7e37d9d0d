//! The SCOOP recipe: a Dmap over two worker processes maps with a shared constant,
//! reduces by a tree, scans, and runs nested submissions on a thread pool.

use braid::dmap::{Dmap, Error, get_const};

#[braid::task(name = "tour.dmap.scaled_square")]
fn scaled_square(x: u64) -> Result<u64, Error> {
    Ok(x * x * *get_const::<u64>("scale")?)
}

#[braid::task(name = "tour.dmap.add")]
fn add(a: u64, b: u64) -> u64 {
    a + b
}

#[braid::task(name = "tour.dmap.fib")]
fn fib(n: u64) -> Result<u64, Error> {
    if n < 2 {
        return Ok(n);
    }
    let dmap = Dmap::current()?;
    let a = dmap.submit(fib::task(), (n - 1,))?;
    let b = dmap.submit(fib::task(), (n - 2,))?;
    Ok(a.result()? + b.result()?)
}

pub(super) fn run() -> Result<String, String> {
    let e = |e: Error| e.to_string();
    let dmap = Dmap::processes(2).map_err(e)?;
    dmap.set_const("scale", &3u64).map_err(e)?;
    let mapped: Vec<u64> = dmap
        .map(scaled_square::task(), 0..1000u64)
        .collect::<Result<_, _>>()
        .map_err(e)?;
    let expected: Vec<u64> = (0..1000u64).map(|x| 3 * x * x).collect();
    if mapped != expected {
        return Err("map with a shared constant gave wrong squares".into());
    }
    let total = dmap
        .map_reduce(scaled_square::task(), add::task(), 0..1000u64)
        .map_err(e)?;
    if total != expected.iter().sum::<u64>() {
        return Err(format!("map_reduce gave {total}"));
    }
    let running = dmap
        .map_scan(scaled_square::task(), add::task(), 1..=4u64)
        .map_err(e)?;
    if running != [3, 15, 42, 90] {
        return Err(format!(
            "map_scan gave {running:?}, expected [3, 15, 42, 90]"
        ));
    }
    drop(dmap);
    let threads = Dmap::threads(2).map_err(e)?;
    let f = threads
        .submit(fib::task(), (12,))
        .and_then(|f| f.result())
        .map_err(e)?;
    if f != 144 {
        return Err(format!("fib(12) by nested submits gave {f}"));
    }
    Ok(format!(
        "1000 scaled squares mapped and tree-reduced to {total}; running sums {running:?}; fib(12) = {f} by nested submits on 2 threads"
    ))
}

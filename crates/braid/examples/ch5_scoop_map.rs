//! Book recipe (ch. 5): "Map functions with SCOOP": `futures.map` in place of the
//! built-in `map`, results in order; `map_as_completed` as they finish; `submit` and
//! `as_completed` for single calls.
//!
//! Python:
//! ```python
//! from scoop import futures
//!
//! def square(x):
//!     return x * x
//!
//! if __name__ == "__main__":
//!     print(list(map(square, range(10))))            # sequential
//!     print(list(futures.map(square, range(10))))    # on the workers, same order
//!     print(sorted(futures.map_as_completed(square, range(10))))
//!     fs = [futures.submit(square, x) for x in range(5)]
//!     print(sum(f.result() for f in futures.as_completed(fs)))
//! ```
//!
//! Run: `cargo run --example ch5_scoop_map`, or on N worker processes:
//! `braid dmap -n 4 target/debug/examples/ch5_scoop_map`.

use braid::dmap::{Dmap, Error, as_completed};

#[braid::task(name = "scoop.square")]
fn square(x: u64) -> u64 {
    x * x
}

fn main() -> Result<(), Error> {
    braid::init();
    // Worker processes: as many as `braid dmap -n N` says, else one per CPU.
    let dmap = Dmap::from_env()?;

    let sequential: Vec<u64> = (0..10).map(|x| x * x).collect();
    println!("map:                {sequential:?}");

    let parallel: Vec<u64> = dmap
        .map(square::task(), 0..10u64)
        .collect::<Result<_, _>>()?;
    println!("futures.map:        {parallel:?}");
    assert_eq!(parallel, sequential);

    let mut unordered: Vec<u64> = dmap
        .map_as_completed(square::task(), 0..10u64)
        .collect::<Result<_, _>>()?;
    unordered.sort_unstable();
    println!("map_as_completed:   {unordered:?} (sorted)");
    assert_eq!(unordered, sequential);

    // Lazy: the workers compute only what is taken (plus a little look-ahead).
    let first: Vec<u64> = dmap
        .map_chunked(square::task(), 0u64.., 4)
        .take(5)
        .collect::<Result<_, _>>()?;
    println!("first 5 of an endless map: {first:?}");

    let futures = (0..5u64)
        .map(|x| dmap.submit(square::task(), (x,)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut total = 0;
    for done in as_completed(futures) {
        total += done.result()?;
    }
    println!("sum of 5 submitted squares: {total}");
    assert_eq!(total, 30);
    Ok(())
}

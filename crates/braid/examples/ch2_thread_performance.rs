//! Book recipe (ch. 2): "Evaluating the performance of multithread applications": the same
//! CPU-bound work run sequentially and on 1 to 4 threads, with the speedup S = Ts / Tp and
//! the efficiency E = S / p.
//!
//! Python:
//! ```python
//! def threaded(num_threads):
//!     threads = [Thread(target=function, args=(size,)) for _ in range(num_threads)]
//!     for t in threads: t.start()
//!     for t in threads: t.join()
//! ```
//!
//! In CPython the GIL lets one thread run Python code at a time, so CPU-bound threads do not
//! go faster (S stays near 1, E falls as 1/p). Rust threads have no such lock: S grows with
//! p up to the number of cores. The problem here is small so that the example runs fast in
//! a debug build; `braid bench threads` measures the same thing properly.
//!
//! Run: `cargo run --example ch2_thread_performance` (add `--release` for real numbers)

use std::time::{Duration, Instant};

use braid::sync::ThreadPool;

/// Count primes below 100 000: pi(100 000) = 9 592.
const LIMIT: u64 = 100_000;
const PRIMES_BELOW_LIMIT: u64 = 9_592;
const CHUNKS: u64 = 16;

/// The CPU-bound function: counts the primes in `[start, end)` by trial division.
fn count_primes((start, end): (u64, u64)) -> u64 {
    (start.max(2)..end)
        .filter(|&n| (2..).take_while(|d| d * d <= n).all(|d| n % d != 0))
        .count() as u64
}

/// The work split into chunks, so that a pool of any size shares it out.
fn chunks() -> impl Iterator<Item = (u64, u64)> {
    let step = LIMIT.div_ceil(CHUNKS);
    (0..CHUNKS).map(move |i| (i * step, ((i + 1) * step).min(LIMIT)))
}

fn on_pool(workers: usize) -> Result<(u64, Duration), Box<dyn std::error::Error>> {
    let pool = ThreadPool::new(workers)?;
    let start = Instant::now();
    let per_chunk = pool
        .map_fn(count_primes, chunks())
        .collect::<Result<Vec<u64>, _>>()?;
    Ok((per_chunk.iter().sum(), start.elapsed()))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();

    let start = Instant::now();
    let sequential: u64 = chunks().map(count_primes).sum();
    let ts = start.elapsed();
    println!("{CHUNKS} chunks of prime counting below {LIMIT}");
    println!("{:>12} {:>10} {:>6} {:>6}", "run", "time", "S", "E");
    println!("{:>12} {:>10.2?} {:>6} {:>6}", "sequential", ts, "-", "-");
    if sequential != PRIMES_BELOW_LIMIT {
        return Err(format!("sequential count {sequential}, expected {PRIMES_BELOW_LIMIT}").into());
    }

    for p in 1..=4 {
        let (count, tp) = on_pool(p)?;
        let speedup = ts.as_secs_f64() / tp.as_secs_f64();
        let efficiency = speedup / p as f64;
        println!(
            "{:>12} {:>10.2?} {:>6.2} {:>6.2}",
            format!("{p} thread(s)"),
            tp,
            speedup,
            efficiency
        );
        if count != sequential {
            return Err(format!("{p} threads counted {count}, sequential {sequential}").into());
        }
    }

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("ok: every run counted {sequential} primes; S can grow up to {cores} core(s) here");
    Ok(())
}

//! Book recipe (ch. 5): "Monte Carlo π with SCOOP": each task throws darts at the unit
//! square and counts those inside the quarter circle; `mapReduce` adds the counts.
//!
//! Python:
//! ```python
//! from random import random
//! from operator import add
//! from scoop import futures
//!
//! def test(tries):
//!     return sum(random() ** 2 + random() ** 2 < 1 for _ in range(tries))
//!
//! if __name__ == "__main__":
//!     n = 3000
//!     hits = futures.mapReduce(test, add, [5000] * n)
//!     print(4.0 * hits / (n * 5000))
//! ```
//!
//! Run: `cargo run --example ch5_scoop_pi`, or `braid dmap -n 4 target/debug/examples/ch5_scoop_pi`.

use braid::dmap::{Dmap, Error};

/// Darts per task.
const TRIES: u64 = 20_000;
/// Tasks.
const TASKS: u64 = 200;

/// A seeded generator (SplitMix64), so every task draws its own stream.
struct SplitMix(u64);

impl SplitMix {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// How many of `TRIES` darts thrown with this seed land inside the quarter circle.
#[braid::task(name = "scoop.pi.test")]
fn test(seed: u64) -> u64 {
    let mut rng = SplitMix(seed.wrapping_mul(0x2545_f491_4f6c_dd1d));
    (0..TRIES)
        .filter(|_| {
            let (x, y) = (rng.next_f64(), rng.next_f64());
            x * x + y * y < 1.0
        })
        .count() as u64
}

#[braid::task(name = "scoop.pi.add")]
fn add(a: u64, b: u64) -> u64 {
    a + b
}

fn main() -> Result<(), Error> {
    braid::init();
    let dmap = Dmap::from_env()?;
    let hits = dmap.map_reduce(test::task(), add::task(), 0..TASKS)?;
    let pi = 4.0 * hits as f64 / (TASKS * TRIES) as f64;
    println!(
        "π ≈ {pi:.5} from {} darts on {} workers (error {:.5})",
        TASKS * TRIES,
        dmap.parallelism(),
        (pi - std::f64::consts::PI).abs()
    );
    assert!(
        (pi - std::f64::consts::PI).abs() < 0.01,
        "π estimate {pi} is off"
    );
    Ok(())
}

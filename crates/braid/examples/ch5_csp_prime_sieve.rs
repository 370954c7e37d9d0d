//! Classic CSP recipe (ch. 5): the prime sieve as a growing pipeline. A generator writes
//! 2, 3, 4, ...; each prime found spawns a new filter process that drops its multiples,
//! so the pipeline grows one process per prime (PyCSP's `Spawn` inside a process). The
//! printer poisons its input after the first N primes, and the poison runs back through
//! every filter to the generator.
//!
//! Python (PyCSP):
//! ```python
//! @process
//! def filter(cin, cout, prime):
//!     while True:
//!         n = cin()
//!         if n % prime:
//!             cout(n)
//!
//! @process
//! def sieve(cin, cout):
//!     prime = cin()
//!     cout(prime)
//!     c = Channel()
//!     Spawn(filter(cin, c.writer(), prime))
//!     sieve(c.reader(), cout)      # recursion as a loop below
//! ```
//!
//! Run: `cargo run --example ch5_csp_prime_sieve`

use braid::csp::{Channel, Parallel, Process, Reader, Writer, process, spawn};

const PRIMES: usize = 100;

fn generate(cout: Writer<u64>) -> Process<Vec<u64>> {
    process(async move {
        let mut n = 2;
        loop {
            cout.write(n).await?;
            n += 1;
        }
    })
}

fn filter(cin: Reader<u64>, cout: Writer<u64>, prime: u64) -> Process<Vec<u64>> {
    process(async move {
        loop {
            let n = cin.read().await?;
            if n % prime != 0 {
                cout.write(n).await?;
            }
        }
    })
    .named(format!("filter {prime}"))
}

/// Takes the first number of its input as the next prime, passes it on, and puts a
/// filter for it in front of itself.
fn sieve(mut cin: Reader<u64>, primes: Writer<u64>) -> Process<Vec<u64>> {
    process(async move {
        loop {
            let prime = cin.read().await?;
            primes.write(prime).await?;
            let next = Channel::new();
            // Detached: the sieve ends only after its filters, and their failures would
            // be reported through it.
            drop(spawn(filter(cin, next.writer(), prime)));
            cin = next.reader();
        }
    })
}

fn printer(cin: Reader<u64>, count: usize) -> Process<Vec<u64>> {
    process(async move {
        let mut primes = Vec::with_capacity(count);
        while primes.len() < count {
            primes.push(cin.read().await?);
        }
        cin.poison();
        Ok(primes)
    })
}

/// The primes below `limit` by trial division: an independent check.
fn primes_below(limit: u64) -> Vec<u64> {
    (2..limit)
        .filter(|n| (2..*n).take_while(|d| d * d <= *n).all(|d| n % d != 0))
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();

    let (numbers, primes) = (Channel::new(), Channel::new());
    let results = Parallel::new([
        generate(numbers.writer()),
        sieve(numbers.reader(), primes.writer()),
        printer(primes.reader(), PRIMES),
    ])
    .run()?;
    let found = results[2].clone().ok_or("the printer did not finish")?;
    println!(
        "the first {PRIMES} primes, through {} filter processes:",
        PRIMES
    );
    for row in found.chunks(20) {
        println!("  {row:?}");
    }
    let expected: Vec<u64> = primes_below(542).into_iter().take(PRIMES).collect();
    if found != expected {
        return Err("the sieve found a wrong prime".into());
    }
    if results[0].is_some() || results[1].is_some() {
        return Err("the generator and the sieve should have stopped on poison".into());
    }
    Ok(())
}

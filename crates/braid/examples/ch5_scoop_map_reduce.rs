//! Book recipe (ch. 5): "mapReduce and mapScan with SCOOP": a map and an associative
//! reduction over the workers (a tree of reductions), and the running reductions.
//! SCOOP's own `mapScan` returns wrong running values from the third item on; braid's
//! returns `[f(x0), f(x0)+f(x1), f(x0)+f(x1)+f(x2), ...]`.
//!
//! Python:
//! ```python
//! import operator
//! from scoop import futures
//!
//! def length(word):
//!     return len(word)
//!
//! if __name__ == "__main__":
//!     words = open("text.txt").read().split()
//!     print(futures.mapReduce(length, operator.add, words))   # total letters
//!     print(futures.mapScan(length, operator.add, words[:5])) # running totals
//! ```
//!
//! Run: `cargo run --example ch5_scoop_map_reduce`, or
//! `braid dmap -n 4 target/debug/examples/ch5_scoop_map_reduce`.

use braid::dmap::{Dmap, Error};

const TEXT: &str = "It was the best of times it was the worst of times it was the age of \
wisdom it was the age of foolishness it was the epoch of belief it was the epoch of \
incredulity it was the season of Light it was the season of Darkness";

#[braid::task(name = "scoop.mr.length")]
fn length(word: String) -> u64 {
    word.chars().count() as u64
}

#[braid::task(name = "scoop.mr.add")]
fn add(a: u64, b: u64) -> u64 {
    a + b
}

/// Associative but not commutative: the tree keeps the words in order.
#[braid::task(name = "scoop.mr.initial")]
fn initial(word: String) -> String {
    word.chars().next().map(String::from).unwrap_or_default()
}

#[braid::task(name = "scoop.mr.concat")]
fn concat(a: String, b: String) -> String {
    a + &b
}

fn main() -> Result<(), Error> {
    braid::init();
    let dmap = Dmap::from_env()?;
    let words: Vec<String> = TEXT.split_whitespace().map(String::from).collect();

    let letters = dmap.map_reduce(length::task(), add::task(), words.clone())?;
    println!("{} words, {letters} letters", words.len());
    assert_eq!(letters, words.iter().map(|w| w.len() as u64).sum::<u64>());

    let initials = dmap.map_reduce(initial::task(), concat::task(), words.clone())?;
    println!("initials in order: {initials}");
    assert!(initials.starts_with("Iwtbotiwtwot"));

    let running = dmap.map_scan(length::task(), add::task(), words[..6].to_vec())?;
    println!("running letter counts of {:?}: {running:?}", &words[..6]);
    assert_eq!(running, [2, 5, 8, 12, 14, 19]);
    Ok(())
}

//! Book recipe (ch. 5): "Shared constants with SCOOP": `shared.setConst` once in the
//! program, `shared.getConst` in every task; each worker receives a constant once.
//!
//! Python:
//! ```python
//! from scoop import futures, shared
//!
//! def price(item):
//!     rates = shared.getConst("rates")
//!     return item["amount"] * rates[item["currency"]]
//!
//! if __name__ == "__main__":
//!     shared.setConst(rates={"EUR": 1.08, "GBP": 1.27, "USD": 1.0})
//!     print(sum(futures.map(price, items)))
//! ```
//!
//! Run: `cargo run --example ch5_scoop_shared`, or `braid dmap -n 4 target/debug/examples/ch5_scoop_shared`.

use std::collections::HashMap;

use braid::dmap::{Dmap, Error, get_const};

/// Converts an amount in a currency to dollars with the shared rates.
#[braid::task(name = "scoop.shared.price")]
fn price(amount: f64, currency: String) -> Result<f64, Error> {
    let rates = get_const::<HashMap<String, f64>>("rates")?;
    let rate = rates
        .get(&currency)
        .ok_or_else(|| Error::ConstantMissing(format!("rates[{currency}]")))?;
    Ok(amount * rate)
}

/// One argument for `map`: an (amount, currency) pair.
#[braid::task(name = "scoop.shared.price_item")]
fn price_item(item: (f64, String)) -> Result<f64, Error> {
    price(item.0, item.1)
}

fn main() -> Result<(), Error> {
    braid::init();
    let dmap = Dmap::from_env()?;
    let rates: HashMap<String, f64> = [("EUR", 1.08), ("GBP", 1.27), ("USD", 1.0)]
        .into_iter()
        .map(|(c, r)| (c.to_string(), r))
        .collect();
    dmap.set_const("rates", &rates)?;

    let currencies = ["EUR", "GBP", "USD"];
    let items: Vec<(f64, String)> = (0..3000)
        .map(|i| (f64::from(i % 100), currencies[i as usize % 3].to_string()))
        .collect();
    let expected: f64 = items.iter().map(|(a, c)| a * rates[c]).sum();
    let total: f64 = dmap
        .map(price_item::task(), items)
        .sum::<Result<f64, Error>>()?;
    println!("3000 prices in dollars sum to {total:.2}");
    assert!((total - expected).abs() < 1e-6);

    let one = dmap
        .submit(price::task(), (10.0, "GBP".to_string()))?
        .result()?;
    println!("10 GBP = {one:.2} USD");

    // A constant is set once: a second value under the same name is refused.
    match dmap.set_const("rates", &HashMap::<String, f64>::new()) {
        Err(Error::ConstantExists(name)) => println!("setting `{name}` again is refused"),
        other => panic!("setting a constant twice gave {other:?}"),
    }
    Ok(())
}

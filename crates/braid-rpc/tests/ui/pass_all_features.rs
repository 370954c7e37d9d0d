//! A service using every supported form: doc comments, no arguments, several owned
//! arguments (a user type and another service's proxy among them), `#[oneway]` with and
//! without an explicit `()`, a `Result` return and a default method body.

use braid_rpc::{AsyncResult, Error, Slot, service};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
pub struct Item {
    pub name: String,
    pub price: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum ShopError {
    SoldOut(String),
}

/// Hears about sales.
#[service]
pub trait Listener {
    /// A sale happened.
    #[oneway]
    fn sold(&self, item: String);
}

/// A shop.
#[service]
pub trait Shop {
    /// How many items there are.
    fn count(&self) -> usize;
    /// Adds `item`, `quantity` times, with a tag.
    fn add(&self, item: Item, quantity: u32, tags: Vec<String>) -> u64;
    /// Buys `name`.
    fn buy(&self, name: String, quantity: u32) -> Result<Item, ShopError>;
    /// Tells `listener` about every sale.
    fn subscribe(&self, listener: ListenerProxy);
    /// Forgets everything.
    #[oneway]
    fn clear(&self) -> ();
    /// Logs a line (one-way, returns at once).
    #[oneway]
    fn log(&self, line: String, level: u8);
    /// Has a body of its own.
    fn name(&self) -> String {
        "shop".to_string()
    }
}

struct Store;

impl Shop for Store {
    fn count(&self) -> usize {
        0
    }
    fn add(&self, _item: Item, quantity: u32, _tags: Vec<String>) -> u64 {
        u64::from(quantity)
    }
    fn buy(&self, name: String, _quantity: u32) -> Result<Item, ShopError> {
        Err(ShopError::SoldOut(name))
    }
    fn subscribe(&self, _listener: ListenerProxy) {}
    fn clear(&self) {}
    fn log(&self, _line: String, _level: u8) {}
}

// The proxy's and the batch's methods, with the types the caller sees.
fn calls(shop: &ShopProxy, listener: ListenerProxy) -> Result<(), Error> {
    let _: usize = shop.count()?;
    let tea = Item {
        name: "tea".into(),
        price: 3,
    };
    let _: u64 = shop.add(tea, 2, vec![])?;
    let _: Result<Item, ShopError> = shop.buy("tea".into(), 1)?;
    let _: AsyncResult<Result<Item, ShopError>> = shop.buy_async("tea".into(), 1);
    shop.subscribe(listener)?;
    shop.clear()?;
    shop.log("hello".into(), 1)?;
    let _: String = shop.name()?;
    let mut batch = shop.batch();
    let _: Slot<usize> = batch.count();
    let _: Slot<()> = batch.log("batched".into(), 2);
    Ok(())
}

fn main() {
    let _object = Store.into_object();
    let _shared = std::sync::Arc::new(Store).into_object();
    let _: fn(&ShopProxy, ListenerProxy) -> Result<(), Error> = calls;
    // Nothing is connected until the first call.
    let _proxy = ShopProxy::connect("braid://127.0.0.1:9/shop").unwrap();
}

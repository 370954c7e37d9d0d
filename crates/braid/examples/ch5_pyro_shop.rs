//! Book recipe (ch. 5): a client-server application with Pyro4, a shop. The server
//! hosts a shared warehouse (one instance for everyone) and a shop counter with one
//! instance per proxy (a session), so each customer has their own session (login, basket,
//! checkout). Several customers shop at once from their own threads; the warehouse never
//! sells an item twice. A customer can also ask to be told when an item is back in stock:
//! the customer serves a callback object and the warehouse calls it.
//!
//! Python (Pyro4, after the book's shop and Pyro's warehouse tutorial):
//! ```python
//! @Pyro4.expose
//! @Pyro4.behavior(instance_mode="single")
//! class Warehouse(object):
//!     def list_contents(self): return self.contents
//!     def take(self, name, item): self.contents.remove(item)
//!     def store(self, name, item): self.contents.append(item)
//!
//! @Pyro4.expose
//! @Pyro4.behavior(instance_mode="session")
//! class Shop(object):
//!     def login(self, name): self.customer = name
//!     def buy(self, item): ...
//!
//! warehouse = Pyro4.Proxy("PYRONAME:example.warehouse")
//! ```
//!
//! Run: `cargo run --example ch5_pyro_shop`

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError, mpsc};

use braid::rpc::{Daemon, InstanceMode, NameServer, service, start_nameserver};
use serde::{Deserialize, Serialize};

/// Why a purchase failed; travels to the client as a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShopError {
    /// The customer did not log in first.
    NotLoggedIn,
    /// The item is not (or no longer) in stock.
    OutOfStock(String),
}

/// The shared stock.
#[service]
pub trait Warehouse {
    /// What is in stock, with counts.
    fn list_contents(&self) -> BTreeMap<String, u32>;
    /// Takes one `item` out for `customer`.
    fn take(&self, customer: String, item: String) -> Result<(), ShopError>;
    /// Puts one `item` back in.
    fn store(&self, customer: String, item: String);
    /// Calls `watcher` back when `item` is stored.
    fn notify_when_stored(&self, item: String, watcher: WatcherProxy);
}

/// The customer's callback object.
#[service]
pub trait Watcher {
    /// `item` is in stock again.
    fn restocked(&self, item: String);
}

/// A shop counter: one per customer proxy, so it remembers who is logged in.
#[service]
pub trait Shop {
    /// Starts a session.
    fn login(&self, customer: String) -> String;
    /// Buys one `item` from the warehouse.
    fn buy(&self, item: String) -> Result<(), ShopError>;
    /// What this session bought.
    fn basket(&self) -> Vec<String>;
}

#[derive(Default)]
struct Stock {
    items: Mutex<BTreeMap<String, u32>>,
    watchers: Mutex<Vec<(String, WatcherProxy)>>,
}

impl Warehouse for Stock {
    fn list_contents(&self) -> BTreeMap<String, u32> {
        self.items
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn take(&self, customer: String, item: String) -> Result<(), ShopError> {
        let mut items = self.items.lock().unwrap_or_else(PoisonError::into_inner);
        match items.get_mut(&item) {
            Some(count) if *count > 0 => {
                *count -= 1;
                println!("warehouse: {customer} took the {item}");
                Ok(())
            }
            _ => Err(ShopError::OutOfStock(item)),
        }
    }

    fn store(&self, customer: String, item: String) {
        *self
            .items
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(item.clone())
            .or_default() += 1;
        println!("warehouse: {customer} stored the {item}");
        let watchers: Vec<WatcherProxy> = {
            let mut watchers = self.watchers.lock().unwrap_or_else(PoisonError::into_inner);
            let (hit, rest) = watchers.drain(..).partition(|(wanted, _)| *wanted == item);
            *watchers = rest;
            hit.into_iter().map(|(_, watcher)| watcher).collect()
        };
        for watcher in watchers {
            if let Err(e) = watcher.restocked(item.clone()) {
                println!("warehouse: could not call a watcher back: {e}");
            }
        }
    }

    fn notify_when_stored(&self, item: String, watcher: WatcherProxy) {
        self.watchers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((item, watcher));
    }
}

struct Counter {
    warehouse: WarehouseProxy,
    customer: Mutex<Option<String>>,
    basket: Mutex<Vec<String>>,
}

impl Shop for Counter {
    fn login(&self, customer: String) -> String {
        *self.customer.lock().unwrap_or_else(PoisonError::into_inner) = Some(customer.clone());
        format!("welcome, {customer}")
    }

    fn buy(&self, item: String) -> Result<(), ShopError> {
        let customer = self
            .customer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or(ShopError::NotLoggedIn)?;
        match self.warehouse.take(customer, item.clone()) {
            Ok(Ok(())) => {
                self.basket
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(item);
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(e) => {
                println!("shop: the warehouse is unreachable: {e}");
                Err(ShopError::OutOfStock(item))
            }
        }
    }

    fn basket(&self) -> Vec<String> {
        self.basket
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

struct Notified(Mutex<mpsc::Sender<String>>);

impl Watcher for Notified {
    fn restocked(&self, item: String) {
        let sent = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .send(item);
        if let Err(e) = sent {
            println!("watcher: nobody listens any more: {e}");
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ns_daemon = start_nameserver(Daemon::builder())?;
    let ns_port = ns_daemon.local_addr().port();
    let ns = NameServer::locate("127.0.0.1", ns_port)?;

    // The server program: a shared warehouse and a shop counter per customer proxy.
    let server = Daemon::start()?;
    let stock = Stock::default();
    for (item, count) in [("camera", 1), ("lamp", 3), ("guitar", 2)] {
        stock
            .items
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(item.to_string(), count);
    }
    let warehouse_uri = server.register("warehouse", stock.into_object())?;
    ns.register("example.warehouse", &warehouse_uri, ["shop"])?;
    let warehouse_for_shop: WarehouseProxy = server.proxy("warehouse");
    let shop_uri = server.register_factory("shop", InstanceMode::Session, move || {
        Counter {
            warehouse: warehouse_for_shop.clone(),
            customer: Mutex::new(None),
            basket: Mutex::new(Vec::new()),
        }
        .into_object()
    })?;
    ns.register("example.shop", &shop_uri, ["shop"])?;

    // Customers, each with their own proxy (connection), shopping at once.
    let customers = ["Ada", "Grace", "Linus"];
    let baskets: Vec<(String, Vec<String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = customers
            .iter()
            .map(|&name| {
                s.spawn(
                    move || -> Result<(String, Vec<String>), braid::rpc::Error> {
                        let shop = ShopProxy::connect(format!(
                            "braidname://example.shop@127.0.0.1:{ns_port}"
                        ))?;
                        println!("{}", shop.login(name.to_string())?);
                        for item in ["camera", "lamp", "guitar"] {
                            match shop.buy(item.to_string())? {
                                Ok(()) => println!("{name} bought a {item}"),
                                Err(e) => println!("{name} could not buy a {item}: {e:?}"),
                            }
                        }
                        Ok((name.to_string(), shop.basket()?))
                    },
                )
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a customer thread panicked"))
            .collect::<Result<_, _>>()
    })?;

    let warehouse: WarehouseProxy = ns.proxy_for("example.warehouse")?;
    let left = warehouse.list_contents()?;
    println!("baskets: {baskets:?}");
    println!("left in the warehouse: {left:?}");
    let sold: usize = baskets.iter().map(|(_, b)| b.len()).sum();
    let cameras = baskets
        .iter()
        .flat_map(|(_, b)| b)
        .filter(|i| *i == "camera")
        .count();
    assert_eq!(cameras, 1, "the only camera is sold once");
    assert_eq!(sold, 1 + 3 + 2);
    assert!(left.values().all(|&n| n == 0));

    // A session without a login is refused by its own counter.
    let stranger = ShopProxy::connect(&shop_uri)?;
    assert_eq!(stranger.buy("lamp".into())?, Err(ShopError::NotLoggedIn));

    // A callback: a customer serves a Watcher and hears when a camera is back.
    let customer_daemon = Daemon::start()?;
    let (tx, rx) = mpsc::channel();
    customer_daemon.register("watcher", Notified(Mutex::new(tx)).into_object())?;
    warehouse.notify_when_stored("camera".into(), customer_daemon.proxy("watcher"))?;
    warehouse.store("Ada".into(), "camera".into())?;
    let item = rx.recv_timeout(std::time::Duration::from_secs(30))?;
    println!("watcher: the {item} is back in stock");
    assert_eq!(item, "camera");
    Ok(())
}

//! Book recipe (ch. 3): "How to manage a state between processes": a manager process
//! holds a dict (and a list, a namespace, a queue) that other processes update through
//! proxies.
//!
//! Python:
//! ```python
//! def worker(dictionary, key, item):
//!     dictionary[key] = item
//!     print("key = %d value = %d" % (key, item))
//!
//! mgr = multiprocessing.Manager()
//! dictionary = mgr.dict()
//! jobs = [multiprocessing.Process(target=worker, args=(dictionary, i, i * 2)) for i in range(10)]
//! for j in jobs: j.start()
//! for j in jobs: j.join()
//! print('Results:', dictionary)
//! ```
//!
//! A manager can also listen on TCP with a key, for processes on other machines:
//! `Manager::builder().tcp(addr).authkey(key).start()`, then `ManagerClient::connect`.
//!
//! Run: `cargo run --example ch3_manager`

use braid::proc::{DictProxy, ListProxy, Manager, Process};

#[braid::task]
fn worker(dictionary: DictProxy<u32, u32>, log: ListProxy<String>, key: u32, item: u32) {
    dictionary.insert(&key, &item).expect("the manager answers");
    log.push(&format!("key = {key} value = {item}"))
        .expect("the manager answers");
    println!("key = {key} value = {item}");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();
    let mgr = Manager::start()?;
    let dictionary = mgr.dict::<u32, u32>()?;
    let log = mgr.list::<String>()?;
    let mut jobs: Vec<Process> = (0..10)
        .map(|i| Process::new(worker::task(), (dictionary.clone(), log.clone(), i, i * 2)))
        .collect();
    for j in &mut jobs {
        j.start()?;
    }
    for j in &jobs {
        j.join()?;
    }
    let mut results = dictionary.items()?;
    results.sort_unstable();
    println!("Results: {results:?}");
    println!("{} log lines", log.len()?);
    let expected: Vec<(u32, u32)> = (0..10).map(|i| (i, i * 2)).collect();
    if results != expected || log.len()? != 10 {
        return Err(format!("the dict holds {results:?}").into());
    }

    let ns = mgr.namespace()?;
    ns.set("x", &10)?;
    ns.set("y", &"text")?;
    println!(
        "namespace: x = {}, y = {:?}",
        ns.get::<i32>("x")?,
        ns.get::<String>("y")?
    );
    mgr.shutdown()?;
    Ok(())
}

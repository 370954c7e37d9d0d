//! Managers across real processes, over a Unix socket and over TCP with a key: this
//! binary re-executes itself as the children, so it owns `main`.

mod common;

use std::process::ExitCode;
use std::time::Duration;

use braid_proc::{
    Address, DictProxy, Error, ListProxy, Manager, ManagerClient, NamespaceProxy, Process,
    QueueProxy,
};

type Check = Result<(), String>;

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

#[braid_core::task(name = "m.work_on_proxies")]
fn work_on_proxies(
    scores: DictProxy<String, u64>,
    log: ListProxy<String>,
    ns: NamespaceProxy,
    done: QueueProxy<u32>,
) {
    let me = braid_proc::current_process().name;
    scores.insert(&me, &(me.len() as u64)).unwrap();
    log.push(&format!("{me} was here")).unwrap();
    let seen: u64 = ns.get("start").unwrap();
    ns.set("seen_by_child", &(seen + 1)).unwrap();
    done.put(&std::process::id()).unwrap();
}

#[braid_core::task(name = "m.remote_client")]
fn remote_client(address: String, key: Vec<u8>, wrong: Vec<u8>) {
    let address: Address = address.parse().unwrap();
    match ManagerClient::connect(&address, &wrong) {
        Err(Error::Auth(why)) => assert!(why.contains("refused"), "{why}"),
        other => panic!("a wrong key gave {other:?}"),
    }
    let client = ManagerClient::connect(&address, &key).unwrap();
    let jobs = client.queue_named::<u64>("jobs", 0).unwrap();
    let results = client.dict_named::<u64, u64>("results").unwrap();
    while let Ok(n) = jobs.get_timeout(Duration::from_secs(20)) {
        if n == 0 {
            break;
        }
        results.insert(&n, &(n * n)).unwrap();
    }
}

fn dicts_lists_namespaces_and_queues() -> Check {
    let manager = Manager::start().map_err(err)?;
    let d = manager.dict::<String, u64>().map_err(err)?;
    d.insert(&"b".into(), &2).map_err(err)?;
    d.insert(&"a".into(), &1).map_err(err)?;
    d.insert(&"b".into(), &20).map_err(err)?;
    ensure!(d.get(&"b".into()).map_err(err)? == Some(20), "get");
    ensure!(d.keys().map_err(err)? == ["b", "a"], "insertion order kept");
    ensure!(
        d.remove(&"b".into()).map_err(err)? == Some(20) && d.len().map_err(err)? == 1,
        "remove"
    );
    ensure!(!d.contains_key(&"zz".into()).map_err(err)?, "contains");

    let l = manager.list::<u32>().map_err(err)?;
    l.extend(&[1, 2, 3]).map_err(err)?;
    l.push(&4).map_err(err)?;
    l.set(0, &10).map_err(err)?;
    l.insert(1, &5).map_err(err)?;
    ensure!(
        l.to_vec().map_err(err)? == [10, 5, 2, 3, 4],
        "list {:?}",
        l.to_vec()
    );
    ensure!(l.pop().map_err(err)? == Some(4), "pop");
    ensure!(
        matches!(l.set(99, &1), Err(Error::Remote(_))),
        "set past the end"
    );

    let ns = manager.namespace().map_err(err)?;
    ns.set("x", &1.5f64).map_err(err)?;
    ensure!(ns.get::<f64>("x").map_err(err)? == 1.5, "namespace get");
    ensure!(
        matches!(ns.get::<f64>("y"), Err(Error::Remote(_))),
        "a missing attribute"
    );

    let q = manager.queue::<String>(1).map_err(err)?;
    q.put(&"one".into()).map_err(err)?;
    let t = Duration::from_millis(5);
    ensure!(
        q.put_timeout(&"two".into(), t) == Err(Error::Timeout(t)),
        "a full queue"
    );
    ensure!(q.get().map_err(err)? == "one", "queue get");
    ensure!(q.get_timeout(t) == Err(Error::Timeout(t)), "an empty queue");
    ensure!(q.try_get() == Err(Error::Empty), "try_get");

    // Named objects are shared; a name of another kind is refused.
    let named = manager.dict_named::<u8, u8>("shared").map_err(err)?;
    named.insert(&1, &2).map_err(err)?;
    ensure!(
        manager
            .dict_named::<u8, u8>("shared")
            .map_err(err)?
            .get(&1)
            .map_err(err)?
            == Some(2),
        "named"
    );
    ensure!(
        matches!(manager.list_named::<u8>("shared"), Err(Error::Remote(_))),
        "wrong kind"
    );
    manager.shutdown().map_err(err)?;
    ensure!(
        d.len().is_err(),
        "a proxy of a stopped manager still answered"
    );
    Ok(())
}

fn proxies_work_in_other_processes() -> Check {
    let manager = Manager::start().map_err(err)?;
    let scores = manager.dict().map_err(err)?;
    let log = manager.list().map_err(err)?;
    let ns = manager.namespace().map_err(err)?;
    let done = manager.queue(0).map_err(err)?;
    ns.set("start", &41u64).map_err(err)?;
    let mut children: Vec<Process> = (0..3)
        .map(|i| {
            Process::new(
                work_on_proxies::task(),
                (scores.clone(), log.clone(), ns.clone(), done.clone()),
            )
            .named(format!("child-{i}"))
        })
        .collect();
    for c in &mut children {
        c.start().map_err(err)?;
    }
    for c in &children {
        c.join_timeout(Duration::from_secs(30)).map_err(err)?;
    }
    ensure!(done.qsize().map_err(err)? == 3, "three children reported");
    let mut names = scores.keys().map_err(err)?;
    names.sort();
    ensure!(
        names == ["child-0", "child-1", "child-2"],
        "scores {names:?}"
    );
    ensure!(log.len().map_err(err)? == 3, "log {:?}", log.to_vec());
    ensure!(
        ns.get::<u64>("seen_by_child").map_err(err)? == 42,
        "namespace from a child"
    );
    // A proxy travels through a queue of another manager's too.
    let relay = manager.queue::<DictProxy<String, u64>>(0).map_err(err)?;
    relay.put(&scores).map_err(err)?;
    let again = relay.get().map_err(err)?;
    ensure!(
        again.len().map_err(err)? == 3,
        "a proxy that crossed a queue"
    );
    Ok(())
}

fn tcp_with_a_key_and_a_wrong_key() -> Check {
    let manager = Manager::builder()
        .tcp("127.0.0.1:0".parse().map_err(err)?)
        .authkey(b"s3cret".to_vec())
        .start()
        .map_err(err)?;
    let address = manager.address().clone();
    ensure!(matches!(address, Address::Tcp(_)), "address {address}");
    let jobs = manager.queue_named::<u64>("jobs", 0).map_err(err)?;
    for n in 1..=20 {
        jobs.put(&n).map_err(err)?;
    }
    jobs.put(&0).map_err(err)?;
    let mut worker = Process::new(
        remote_client::task(),
        (address.to_string(), b"s3cret".to_vec(), b"guess".to_vec()),
    );
    worker.start().map_err(err)?;
    worker.join_timeout(Duration::from_secs(30)).map_err(err)?;
    let results = manager.dict_named::<u64, u64>("results").map_err(err)?;
    ensure!(
        results.len().map_err(err)? == 20,
        "results {:?}",
        results.items()
    );
    ensure!(results.get(&7).map_err(err)? == Some(49), "7 squared");
    match ManagerClient::connect(&address, b"nope") {
        Err(Error::Auth(why)) if why.contains("refused the authentication key") => Ok(()),
        other => Err(format!("a wrong key gave {other:?}")),
    }
}

fn a_dead_manager_is_an_error_not_a_hang() -> Check {
    let manager = Manager::start().map_err(err)?;
    let q = manager.queue::<u8>(0).map_err(err)?;
    let pid = manager.pid().ok_or("no pid")?;
    let waiter = {
        let q = q.clone();
        std::thread::spawn(move || q.get())
    };
    // The waiter may or may not be inside its get yet: either way it must end.
    let pid = rustix::process::Pid::from_raw(pid as i32).ok_or("pid 0")?;
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).map_err(err)?;
    let outcome = waiter.join().map_err(|_| "the waiter panicked")?;
    ensure!(
        outcome.is_err(),
        "a get on a killed manager gave {outcome:?}"
    );
    ensure!(q.qsize().is_err(), "a call on a killed manager succeeded");
    drop(manager);
    Ok(())
}

fn main() -> ExitCode {
    braid_core::init();
    common::run(&[
        (
            "dicts_lists_namespaces_and_queues",
            dicts_lists_namespaces_and_queues,
        ),
        (
            "proxies_work_in_other_processes",
            proxies_work_in_other_processes,
        ),
        (
            "tcp_with_a_key_and_a_wrong_key",
            tcp_with_a_key_and_a_wrong_key,
        ),
        (
            "a_dead_manager_is_an_error_not_a_hang",
            a_dead_manager_is_an_error_not_a_hang,
        ),
    ])
}

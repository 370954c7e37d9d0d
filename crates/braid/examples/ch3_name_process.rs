//! Book recipe (ch. 3): "How to name a process": give processes names, read them back
//! inside the child with `current_process()`.
//!
//! Python:
//! ```python
//! def myFunc():
//!     name = multiprocessing.current_process().name
//!     print("Starting process name = %s \n" % name)
//!
//! process_with_name = multiprocessing.Process(name='myFunc process', target=myFunc)
//! process_with_default_name = multiprocessing.Process(target=myFunc)
//! ```
//!
//! Run: `cargo run --example ch3_name_process`

use braid::proc::{Connection, Process, current_process, pipe};

#[braid::task]
fn my_func(report: Connection<String>) {
    let name = current_process().name;
    println!("Starting process name = {name}");
    report.send(&name).expect("the parent listens");
    println!("Exiting process name = {name}");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();
    println!("this is {}", current_process().name);
    let (ours, theirs) = pipe()?;
    let mut named = Process::new(my_func::task(), (theirs.clone(),)).named("myFunc process");
    let mut default_named = Process::new(my_func::task(), (theirs,));
    named.start()?;
    named.join()?;
    default_named.start()?;
    default_named.join()?;
    let first = ours.recv()?;
    let second = ours.recv()?;
    println!("the children called themselves {first:?} and {second:?}");
    if first != "myFunc process"
        || !second.starts_with("Process-")
        || second != default_named.name()
    {
        return Err(format!("wrong names: {first:?}, {second:?}").into());
    }
    Ok(())
}

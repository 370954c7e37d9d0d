//! Book recipe (ch. 3): "How to spawn a process": start processes running a function
//! with an argument, then join them.
//!
//! Python:
//! ```python
//! def myFunc(i):
//!     print('calling myFunc from process n°: %s' % i)
//!     for j in range(0, i):
//!         print('output from myFunc is :%s' % j)
//!
//! if __name__ == '__main__':
//!     for i in range(6):
//!         p = multiprocessing.Process(target=myFunc, args=(i,))
//!         p.start()
//!         p.join()
//! ```
//!
//! The child is this program started again (Python's "spawn"): `braid::init()`, the first
//! line of `main`, is where a child turns into the worker it was started to be.
//!
//! Run: `cargo run --example ch3_spawn_process`

use braid::proc::Process;

/// A registered task: a child finds it by name. (A plain `fn` works too, with
/// `Process::from_fn`; see `ch3_process_subclass`.)
#[braid::task]
fn my_func(i: u32) -> Result<(), String> {
    println!("calling my_func from process n°: {i}");
    for j in 0..i {
        println!("output from my_func is: {j}");
    }
    // What a child computed reaches its parent through a pipe or a queue; here the exit
    // code says whether it went well.
    if i > 5 {
        return Err(format!("{i} is out of range"));
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();
    for i in 0..6 {
        let mut p = Process::new(my_func::task(), (i,));
        p.start()?;
        p.join()?;
        if p.exitcode() != Some(0) {
            return Err(format!("process {i} exited with {:?}", p.exitcode()).into());
        }
    }
    // A failing child: its error crosses over to the parent's join.
    let mut p = Process::new(my_func::task(), (9,));
    p.start()?;
    match p.join() {
        Err(e) if e.to_string().contains("9 is out of range") => {
            println!(
                "the failing child reported: {e} (exit code {:?})",
                p.exitcode()
            );
        }
        other => return Err(format!("expected the child's error, got {other:?}").into()),
    }
    Ok(())
}

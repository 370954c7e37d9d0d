//! Book recipe (ch. 3): "How to manage a state between processes" with shared memory:
//! a `Value` and an `Array` changed by a child, and a named `SharedMemory` block.
//!
//! Python:
//! ```python
//! def f(n, a):
//!     n.value = 3.1415927  # braid: std::f64::consts::PI
//!     for i in range(len(a)): a[i] = -a[i]
//!
//! num = Value('d', 0.0); arr = Array('i', range(10))
//! p = Process(target=f, args=(num, arr)); p.start(); p.join()
//! print(num.value); print(arr[:])
//!
//! shm = shared_memory.SharedMemory(create=True, size=10)
//! ```
//!
//! Run: `cargo run --example ch3_value_array`

use braid::proc::{Array, Process, SharedMemory, Value};

#[braid::task]
fn f(n: Value<f64>, a: Array<i32>, counter: Value<u64>) {
    n.set(std::f64::consts::PI);
    for i in 0..a.len() {
        let v = a.get(i).expect("in bounds");
        a.set(i, -v).expect("in bounds");
    }
    for _ in 0..1000 {
        counter.update(|c| c + 1); // read-modify-write under the value's lock
    }
}

#[braid::task]
fn greet(block: SharedMemory) {
    block.write(0, b"hello from a child").expect("in bounds");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();
    let num = Value::new(0.0f64)?;
    let arr = Array::from_slice(&(0..10).collect::<Vec<i32>>())?;
    let counter = Value::new(0u64)?;
    let mut children: Vec<Process> = (0..2)
        .map(|_| Process::new(f::task(), (num.clone(), arr.clone(), counter.clone())))
        .collect();
    // One after the other: each negates every element.
    for child in &mut children {
        child.start()?;
        child.join()?;
    }
    println!("{}", num.get());
    println!("{:?}", arr.to_vec());
    println!(
        "counter after 2 x 1000 locked increments: {}",
        counter.get()
    );
    if num.get() != std::f64::consts::PI
        || arr.to_vec() != (0..10).collect::<Vec<i32>>()
        || counter.get() != 2000
    {
        return Err("wrong shared values".into());
    }

    // A named block: the creator owns it and unlinks it on drop.
    let block = SharedMemory::create(32)?;
    let mut p = Process::new(greet::task(), (SharedMemory::open(block.name())?,));
    p.start()?;
    p.join()?;
    let mut text = vec![0u8; 18];
    block.read(0, &mut text)?;
    println!(
        "shared memory {} says {:?}",
        block.name(),
        String::from_utf8_lossy(&text)
    );
    if text != b"hello from a child" {
        return Err("wrong bytes in shared memory".into());
    }
    Ok(())
}

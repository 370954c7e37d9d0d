//! Point to point: rank 0 sends a list to rank 2 and rank 1 a dict to rank 3, as objects
//! (`comm.send`/`comm.recv`), then rank 0 sends a typed buffer (`comm.Send`/`comm.Recv`).

use std::collections::BTreeMap;

use braid::mpi::{self, Comm};

fn exchange(comm: Comm) -> Result<(), mpi::Error> {
    match comm.rank() {
        0 => {
            let data = vec![11, 22, 33, 44];
            println!("rank 0 sends {data:?} to rank 2");
            comm.send(&data, 2, 0)?;
            let buffer: Vec<f64> = (0..5).map(|i| i as f64 * 0.5).collect();
            comm.send_buf(&buffer, 2, 1)?;
        }
        1 => {
            let data: BTreeMap<String, i32> = [("a".into(), 7), ("b".into(), 3)].into();
            println!("rank 1 sends {data:?} to rank 3");
            comm.send(&data, 3, 0)?;
        }
        2 => {
            let data: Vec<i32> = comm.recv(0, 0)?;
            println!("rank 2 received {data:?}");
            let mut buffer = [0.0f64; 5];
            let status = comm.recv_buf(&mut buffer, 0, 1)?;
            println!("rank 2 received {} doubles: {buffer:?}", status.count());
        }
        3 => {
            let data: BTreeMap<String, i32> = comm.recv(1, 0)?;
            println!("rank 3 received {data:?}");
        }
        _ => {}
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();
    for result in mpi::run(4, exchange)? {
        result?;
    }
    Ok(())
}

//! Book recipe (ch. 3): "How to exchange objects between processes: using pipes": one
//! process sends numbers down a pipe, a second squares them into another pipe, and the
//! main process prints the squares.
//!
//! Python:
//! ```python
//! def create_items(pipe):
//!     output_pipe, _ = pipe
//!     for item in range(10): output_pipe.send(item)
//!     output_pipe.close()
//! def multiply_items(pipe_1, pipe_2):
//!     close, input_pipe = pipe_1; close.close()
//!     output_pipe, _ = pipe_2
//!     try:
//!         while True:
//!             item = input_pipe.recv(); output_pipe.send(item * item)
//!     except EOFError:
//!         output_pipe.close()
//! ```
//!
//! As in Python, the end of the stream is the other end closing: passing an end to a
//! child moves it there, so when the child exits, `recv` reports `Closed` instead of
//! waiting forever.
//!
//! Run: `cargo run --example ch3_pipe`

use braid::proc::{Connection, Error, Process, one_way_pipe, pipe};

#[braid::task]
fn create_items(output: Connection<u64>) {
    for item in 0..10 {
        output.send(&item).expect("the other end reads");
    }
}

#[braid::task]
fn multiply_items(input: Connection<u64>, output: Connection<u64>) {
    while let Ok(item) = input.recv() {
        output.send(&(item * item)).expect("the other end reads");
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();
    let (first_in, first_out) = pipe::<u64>()?; // two-way, used one way
    let (squares_in, squares_out) = one_way_pipe::<u64>()?;
    let mut p1 = Process::new(create_items::task(), (first_in,));
    let mut p2 = Process::new(multiply_items::task(), (first_out, squares_out));
    p1.start()?;
    p2.start()?;
    let mut squares = Vec::new();
    loop {
        match squares_in.recv() {
            Ok(square) => {
                println!("{square}");
                squares.push(square);
            }
            Err(Error::Closed) => break, // both children are done
            Err(e) => return Err(e.into()),
        }
    }
    p1.join()?;
    p2.join()?;
    if squares != (0..10).map(|i| i * i).collect::<Vec<u64>>() {
        return Err(format!("got {squares:?}").into());
    }
    Ok(())
}

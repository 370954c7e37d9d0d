//! A virtual topology: a periodic 2-D grid of the ranks (`comm.Create_cart` with
//! `MPI.Compute_dims`), each rank finding its neighbours (`cart.Shift`) and passing its
//! rank to the one above.

use braid::mpi::{self, Comm};

fn grid(comm: Comm) -> Result<(), mpi::Error> {
    let dims = mpi::dims_create(comm.size(), &[0, 0])?;
    let Some(cart) = comm.create_cart(&dims, &[true, true], false)? else {
        return Ok(());
    };
    let coords = cart.coords(cart.rank())?;
    let (up, down) = cart.shift(0, 1)?;
    let (left, right) = cart.shift(1, 1)?;
    let (Some(up), Some(down), Some(left), Some(right)) = (up, down, left, right) else {
        return Err(mpi::Error::InvalidArgument(
            "a periodic grid has every neighbour".into(),
        ));
    };
    let from_below: usize = cart.sendrecv(&cart.rank(), down, 0, up, 0)?;
    println!(
        "process {} at {coords:?} of a {dims:?} grid: neighbours up {up} down {down} left {left} right {right}; got {from_below} from up",
        cart.rank()
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();
    for result in mpi::run(6, grid)? {
        result?;
    }
    Ok(())
}

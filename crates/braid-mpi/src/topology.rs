//! New communicators: [`Comm::dup`], [`Comm::split`], and cartesian topologies
//! ([`Comm::create_cart`], [`CartComm`], [`dims_create`]).

use std::ops::Deref;

use crate::{Comm, Error, Op, Result};

impl Comm {
    /// A fresh context id that no rank of this communicator uses yet (collective).
    fn new_context(&self) -> Result<u32> {
        let mine = self.engine().next_ctx;
        let id = self.allreduce(&mine, Op::max())?;
        let next = id
            .checked_add(1)
            .ok_or_else(|| Error::invalid("out of communicator ids"))?;
        self.engine().next_ctx = next;
        Ok(id)
    }

    /// A new communicator with the same ranks and a separate space of messages
    /// (`comm.Dup()`); collective.
    pub fn dup(&self) -> Result<Comm> {
        on_mpi!(self, m => Ok(Comm::open_mpi(m.dup()?)));
        let id = self.new_context()?;
        self.derived(id, self.inner().members.clone())
            .ok_or_else(|| Error::invalid("dup: this rank is not a member"))
    }

    /// Splits the communicator by colour (`comm.Split(color, key)`); collective. Ranks
    /// with the same `colour` form a new communicator, numbered by `key` then by their
    /// rank here; a rank passing `None` (`MPI.UNDEFINED`) gets `None`.
    pub fn split(&self, colour: Option<u32>, key: i64) -> Result<Option<Comm>> {
        on_mpi!(self, m => Ok(m.split(colour, key)?.map(Comm::open_mpi)));
        let all: Vec<(Option<u32>, i64)> = self.allgather(&(colour, key))?;
        let id = self.new_context()?;
        let Some(colour) = colour else {
            return Ok(None);
        };
        let mut members: Vec<(i64, usize)> = all
            .iter()
            .enumerate()
            .filter(|(_, (c, _))| *c == Some(colour))
            .map(|(rank, (_, key))| (*key, rank))
            .collect();
        members.sort();
        let world: Vec<usize> = members
            .into_iter()
            .map(|(_, rank)| self.to_world(rank))
            .collect::<Result<_>>()?;
        Ok(self.derived(id, world))
    }

    /// A cartesian topology over the first `dims.iter().product()` ranks
    /// (`comm.Create_cart(dims, periods, reorder)`); collective. Ranks beyond the grid get
    /// `None`. `reorder` is accepted and ranks keep their order (which MPI allows).
    pub fn create_cart(
        &self,
        dims: &[usize],
        periods: &[bool],
        reorder: bool,
    ) -> Result<Option<CartComm>> {
        let _ = reorder;
        if dims.len() != periods.len() {
            return Err(Error::invalid(format!(
                "create_cart: {} dims but {} periods",
                dims.len(),
                periods.len()
            )));
        }
        let cells: usize = dims.iter().product();
        if dims.contains(&0) || cells > self.size() {
            return Err(Error::invalid(format!(
                "create_cart: a grid of {dims:?} needs {cells} ranks; the communicator has {}",
                self.size()
            )));
        }
        #[cfg(feature = "mpi")]
        if let Some(m) = self.mpi() {
            let comm = m.create_cart(dims, periods, reorder)?.map(Comm::open_mpi);
            return Ok(comm.map(|comm| CartComm {
                comm,
                dims: dims.to_vec(),
                periods: periods.to_vec(),
            }));
        }
        let colour = (self.rank() < cells).then_some(0);
        let comm = self.split(colour, self.rank() as i64)?;
        Ok(comm.map(|comm| CartComm {
            comm,
            dims: dims.to_vec(),
            periods: periods.to_vec(),
        }))
    }
}

/// A communicator with a cartesian topology (mpi4py's `Cartcomm`): ranks are laid out on
/// a grid in row-major order, each dimension periodic or not.
#[derive(Debug, Clone)]
pub struct CartComm {
    comm: Comm,
    dims: Vec<usize>,
    periods: Vec<bool>,
}

impl Deref for CartComm {
    type Target = Comm;
    fn deref(&self) -> &Comm {
        &self.comm
    }
}

impl CartComm {
    /// The grid's extent in each dimension.
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// Whether each dimension wraps around.
    pub fn periods(&self) -> &[bool] {
        &self.periods
    }

    /// The number of dimensions.
    pub fn ndims(&self) -> usize {
        self.dims.len()
    }

    /// The communicator underneath.
    pub fn comm(&self) -> &Comm {
        &self.comm
    }

    /// The grid coordinates of `rank` (`cart.Get_coords(rank)`).
    pub fn coords(&self, rank: usize) -> Result<Vec<usize>> {
        if rank >= self.comm.size() {
            return Err(Error::invalid(format!("rank {rank} is outside the grid")));
        }
        on_mpi!(self.comm, m => m.cart_coords(rank, self.dims.len()));
        let mut coords = vec![0; self.dims.len()];
        let mut rest = rank;
        for (d, extent) in self.dims.iter().enumerate().rev() {
            coords[d] = rest % extent;
            rest /= extent;
        }
        Ok(coords)
    }

    /// The rank at `coords` (`cart.Get_cart_rank(coords)`): periodic dimensions wrap,
    /// others must be in range.
    pub fn rank_of(&self, coords: &[i64]) -> Result<usize> {
        self.try_rank_of(coords)?.ok_or_else(|| {
            Error::invalid(format!(
                "coordinates {coords:?} are outside the grid {:?}",
                self.dims
            ))
        })
    }

    fn try_rank_of(&self, coords: &[i64]) -> Result<Option<usize>> {
        if coords.len() != self.dims.len() {
            return Err(Error::invalid(format!(
                "{} coordinates for a grid of {} dimensions",
                coords.len(),
                self.dims.len()
            )));
        }
        let mut rank = 0usize;
        for ((&c, &extent), &periodic) in coords.iter().zip(&self.dims).zip(&self.periods) {
            let extent_i = extent as i64;
            let c = if periodic {
                c.rem_euclid(extent_i)
            } else if (0..extent_i).contains(&c) {
                c
            } else {
                return Ok(None);
            };
            rank = rank * extent + c as usize;
        }
        #[cfg(feature = "mpi")]
        if let Some(m) = self.comm.mpi() {
            let wrapped: Vec<i64> = coords
                .iter()
                .zip(&self.dims)
                .map(|(&c, &extent)| c.rem_euclid(extent as i64))
                .collect();
            return m.cart_rank(&wrapped).map(Some);
        }
        Ok(Some(rank))
    }

    /// The ranks `disp` steps before and after this one along `direction`
    /// (`cart.Shift(direction, disp)`): `(source, dest)`, `None` past a non-periodic edge
    /// (`MPI.PROC_NULL`).
    pub fn shift(&self, direction: usize, disp: i64) -> Result<(Option<usize>, Option<usize>)> {
        if direction >= self.dims.len() {
            return Err(Error::invalid(format!(
                "direction {direction} in a grid of {} dimensions",
                self.dims.len()
            )));
        }
        on_mpi!(self.comm, m => m.cart_shift(direction, disp));
        let me: Vec<i64> = self
            .coords(self.comm.rank())?
            .into_iter()
            .map(|c| c as i64)
            .collect();
        let at = |delta: i64| {
            let mut c = me.clone();
            c[direction] += delta;
            self.try_rank_of(&c)
        };
        Ok((at(-disp)?, at(disp)?))
    }

    /// The neighbours one step away in every dimension: for each dimension,
    /// `(before, after)` as [`CartComm::shift`] gives them.
    pub fn neighbours(&self) -> Result<Vec<(Option<usize>, Option<usize>)>> {
        (0..self.dims.len()).map(|d| self.shift(d, 1)).collect()
    }
}

/// Balanced grid dimensions for `nnodes` ranks, like `MPI.Compute_dims(nnodes, dims)`:
/// entries of `dims` that are non-zero are kept; the zeros are filled so that the
/// product is `nnodes` and the filled extents are as close as possible, largest first.
///
/// ```
/// assert_eq!(braid_mpi::dims_create(12, &[0, 0]).unwrap(), vec![4, 3]);
/// assert_eq!(braid_mpi::dims_create(16, &[0, 0, 0]).unwrap(), vec![4, 2, 2]);
/// assert_eq!(braid_mpi::dims_create(6, &[0, 3]).unwrap(), vec![2, 3]);
/// ```
pub fn dims_create(nnodes: usize, dims: &[usize]) -> Result<Vec<usize>> {
    let fixed: usize = dims.iter().filter(|d| **d != 0).product();
    if nnodes == 0 || fixed == 0 || !nnodes.is_multiple_of(fixed) {
        return Err(Error::invalid(format!(
            "dims_create: {nnodes} ranks cannot fill the fixed dimensions {dims:?}"
        )));
    }
    let free = dims.iter().filter(|d| **d == 0).count();
    let mut rest = nnodes / fixed;
    if free == 0 {
        return if rest == 1 {
            Ok(dims.to_vec())
        } else {
            Err(Error::invalid(format!(
                "dims_create: {dims:?} does not hold {nnodes} ranks"
            )))
        };
    }
    let mut factors = Vec::new();
    let mut p = 2;
    while p * p <= rest {
        while rest.is_multiple_of(p) {
            factors.push(p);
            rest /= p;
        }
        p += 1;
    }
    if rest > 1 {
        factors.push(rest);
    }
    let mut extents = vec![1usize; free];
    for f in factors.into_iter().rev() {
        if let Some(smallest) = extents.iter_mut().min() {
            *smallest *= f;
        }
    }
    extents.sort_unstable_by(|a, b| b.cmp(a));
    let mut filled = extents.into_iter();
    Ok(dims
        .iter()
        .map(|&d| {
            if d == 0 {
                filled.next().unwrap_or(1)
            } else {
                d
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dims_like_mpi() {
        assert_eq!(dims_create(4, &[0, 0]).unwrap(), vec![2, 2]);
        assert_eq!(dims_create(7, &[0, 0]).unwrap(), vec![7, 1]);
        assert_eq!(dims_create(24, &[0, 0, 0]).unwrap(), vec![4, 3, 2]);
        assert_eq!(dims_create(8, &[2, 0]).unwrap(), vec![2, 4]);
        assert!(dims_create(7, &[2, 0]).is_err());
        assert!(dims_create(4, &[2, 3]).is_err());
    }
}

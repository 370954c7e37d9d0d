//! The shape of a kernel launch: blocks, threads per block, dynamic shared memory.

use crate::error::{Error, Result};

use super::device::DeviceProperties;

/// Three extents, as CUDA's `dim3`: unspecified dimensions are 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Dim3 {
    /// Extent along x.
    pub x: u32,
    /// Extent along y.
    pub y: u32,
    /// Extent along z.
    pub z: u32,
}

impl Dim3 {
    /// The product of the three extents.
    pub fn volume(self) -> u64 {
        u64::from(self.x) * u64::from(self.y) * u64::from(self.z)
    }

    fn tuple(self) -> (u32, u32, u32) {
        (self.x, self.y, self.z)
    }
}

impl From<u32> for Dim3 {
    fn from(x: u32) -> Dim3 {
        Dim3 { x, y: 1, z: 1 }
    }
}

impl From<(u32, u32)> for Dim3 {
    fn from((x, y): (u32, u32)) -> Dim3 {
        Dim3 { x, y, z: 1 }
    }
}

impl From<(u32, u32, u32)> for Dim3 {
    fn from((x, y, z): (u32, u32, u32)) -> Dim3 {
        Dim3 { x, y, z }
    }
}

/// How a kernel is launched: PyCUDA's `grid=` and `block=` arguments and its `shared=`
/// bytes of dynamic shared memory (`extern __shared__` arrays).
///
/// ```
/// use braid_gpu::Grid;
///
/// // One thread per element of a million, 256 threads per block.
/// let grid = Grid::linear(1_000_000, 256);
/// assert_eq!((grid.blocks.x, grid.threads.x), (3907, 256));
///
/// // 16x16 tiles over a 100x70 matrix (width 100), each with 2 KiB of shared memory.
/// let grid = Grid::tiles(100, 70, (16, 16)).shared_mem(2048);
/// assert_eq!((grid.blocks.x, grid.blocks.y), (7, 5));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Grid {
    /// Blocks in the grid.
    pub blocks: Dim3,
    /// Threads in each block.
    pub threads: Dim3,
    /// Dynamic shared memory per block, in bytes.
    pub shared_mem_bytes: u32,
}

impl Grid {
    /// A grid of `blocks` blocks of `threads` threads each, with no dynamic shared memory.
    pub fn new(blocks: impl Into<Dim3>, threads: impl Into<Dim3>) -> Grid {
        Grid {
            blocks: blocks.into(),
            threads: threads.into(),
            shared_mem_bytes: 0,
        }
    }

    /// Enough blocks of `threads_per_block` threads for one thread per element of `n`.
    pub fn linear(n: usize, threads_per_block: u32) -> Grid {
        let per = threads_per_block.max(1) as usize;
        let blocks = u32::try_from(n.div_ceil(per)).unwrap_or(u32::MAX);
        Grid::new(blocks, threads_per_block)
    }

    /// Enough `tile`-shaped blocks to cover a `width` x `height` matrix, one thread per
    /// element: `blocks.x` runs along the width (columns), `blocks.y` along the height.
    pub fn tiles(width: usize, height: usize, tile: (u32, u32)) -> Grid {
        let up =
            |n: usize, t: u32| u32::try_from(n.div_ceil(t.max(1) as usize)).unwrap_or(u32::MAX);
        Grid::new((up(width, tile.0), up(height, tile.1)), tile)
    }

    /// The same grid with `bytes` of dynamic shared memory per block.
    pub fn shared_mem(mut self, bytes: u32) -> Grid {
        self.shared_mem_bytes = bytes;
        self
    }

    /// Checks the grid against what the device allows; the error says which limit.
    pub(crate) fn check(&self, p: &DeviceProperties) -> Result<()> {
        let (b, t) = (self.blocks, self.threads);
        if b.volume() == 0 || t.volume() == 0 {
            return Err(Error::Invalid(format!(
                "a launch needs at least one block and one thread (blocks {:?}, threads {:?})",
                b.tuple(),
                t.tuple()
            )));
        }
        if t.volume() > u64::from(p.max_threads_per_block) {
            return Err(Error::Invalid(format!(
                "{} threads per block; the device allows {}",
                t.volume(),
                p.max_threads_per_block
            )));
        }
        let over = |v: Dim3, max: (u32, u32, u32)| v.x > max.0 || v.y > max.1 || v.z > max.2;
        if over(t, p.max_block_dim) {
            return Err(Error::Invalid(format!(
                "block {:?} exceeds the device's largest block {:?}",
                t.tuple(),
                p.max_block_dim
            )));
        }
        if over(b, p.max_grid_dim) {
            return Err(Error::Invalid(format!(
                "grid {:?} exceeds the device's largest grid {:?}",
                b.tuple(),
                p.max_grid_dim
            )));
        }
        if self.shared_mem_bytes > p.shared_memory_per_block_optin {
            return Err(Error::Invalid(format!(
                "{} bytes of dynamic shared memory; the device allows {} per block",
                self.shared_mem_bytes, p.shared_memory_per_block_optin
            )));
        }
        Ok(())
    }

    pub(crate) fn config(&self) -> cudarc::driver::LaunchConfig {
        cudarc::driver::LaunchConfig {
            grid_dim: self.blocks.tuple(),
            block_dim: self.threads.tuple(),
            shared_mem_bytes: self.shared_mem_bytes,
        }
    }
}

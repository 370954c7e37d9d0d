//! The kernels behind `DeviceArray`'s own operations (fill, arange, arithmetic), generated
//! per element type and compiled once per device.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::scalar::Scalar;

use super::array::DeviceArray;
use super::device::Device;
use super::grid::Grid;
use super::module::{Kernel, SourceModule};

/// Threads per block of the built-in element-wise kernels.
pub(crate) const BLOCK: u32 = 256;

/// The grid-stride loop every generated element-wise kernel runs: correct for any grid,
/// one pass when the grid covers `n`.
pub(crate) const CUDA_LOOP: &str = "for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; \
     i < n; i += (long long)blockDim.x * gridDim.x)";

/// An element-wise arithmetic operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Add,
    Sub,
    Mul,
    Div,
}

impl Op {
    fn symbol(self) -> &'static str {
        match self {
            Op::Add => "+",
            Op::Sub => "-",
            Op::Mul => "*",
            Op::Div => "/",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Op::Add => "add",
            Op::Sub => "sub",
            Op::Mul => "mul",
            Op::Div => "div",
        }
    }
}

const OPS: [Op; 4] = [Op::Add, Op::Sub, Op::Mul, Op::Div];

/// The CUDA C of every built-in kernel for element type `t` (`float`, `long long`, ...).
pub(crate) fn source(t: &str) -> String {
    let lp = CUDA_LOOP;
    let mut s = String::new();
    s.push_str(&format!(
        "__global__ void braid_fill({t} *z, {t} v, long long n) {{ {lp} z[i] = v; }}\n"
    ));
    s.push_str(&format!(
        "__global__ void braid_arange({t} *z, {t} start, {t} step, long long n) {{ {lp} z[i] = start + ({t})i * step; }}\n"
    ));
    s.push_str(&format!(
        "__global__ void braid_neg({t} *z, const {t} *x, long long n) {{ {lp} z[i] = -x[i]; }}\n"
    ));
    for op in OPS {
        let (name, sym) = (op.name(), op.symbol());
        s.push_str(&format!(
            "__global__ void braid_{name}({t} *z, const {t} *x, const {t} *y, long long n) {{ {lp} z[i] = x[i] {sym} y[i]; }}\n"
        ));
        s.push_str(&format!(
            "__global__ void braid_{name}_scalar({t} *z, const {t} *x, {t} s, long long n) {{ {lp} z[i] = x[i] {sym} s; }}\n"
        ));
        s.push_str(&format!(
            "__global__ void braid_r{name}_scalar({t} *z, const {t} *x, {t} s, long long n) {{ {lp} z[i] = s {sym} x[i]; }}\n"
        ));
    }
    s
}

/// The names of the kernels in [`source`].
fn names() -> Vec<String> {
    let mut names = vec![
        "braid_fill".to_string(),
        "braid_arange".into(),
        "braid_neg".into(),
    ];
    for op in OPS {
        names.push(format!("braid_{}", op.name()));
        names.push(format!("braid_{}_scalar", op.name()));
        names.push(format!("braid_r{}_scalar", op.name()));
    }
    names
}

/// The built-in kernels for one element type on one device.
pub(crate) struct Builtins {
    kernels: HashMap<String, Kernel>,
}

impl Builtins {
    pub(crate) fn get<T: Scalar>(device: &Device) -> Result<std::sync::Arc<Builtins>> {
        device.builtin(&format!("array ops {}", T::CUDA_NAME), || {
            let module = SourceModule::new(device, &source(T::CUDA_NAME))?;
            let kernels = names()
                .into_iter()
                .map(|name| module.function(&name).map(|k| (name, k)))
                .collect::<Result<HashMap<_, _>>>()?;
            Ok(Builtins { kernels })
        })
    }

    fn kernel(&self, name: &str) -> Result<&Kernel> {
        self.kernels
            .get(name)
            .ok_or_else(|| Error::Invalid(format!("no built-in kernel {name}")))
    }
}

/// The grid for a built-in element-wise kernel over `n` elements (`n` > 0).
pub(crate) fn grid(device: &Device, n: usize) -> Grid {
    let max_blocks = device.properties().max_grid_dim.0.max(1);
    let mut grid = Grid::linear(n, BLOCK);
    grid.blocks.x = grid.blocks.x.min(max_blocks);
    grid
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(crate) fn fill<T: Scalar>(z: &mut DeviceArray<T>, value: T) -> Result<()> {
    let n = z.len();
    if n == 0 {
        return Ok(());
    }
    let device = z.device().clone();
    let builtins = Builtins::get::<T>(&device)?;
    builtins
        .kernel("braid_fill")?
        .launch(grid(&device, n))
        .arg(&mut *z)
        .arg(value)
        .arg(count(n))
        .run()
}

pub(crate) fn arange<T: Scalar>(z: &mut DeviceArray<T>, start: T, step: T) -> Result<()> {
    let n = z.len();
    if n == 0 {
        return Ok(());
    }
    let device = z.device().clone();
    let builtins = Builtins::get::<T>(&device)?;
    builtins
        .kernel("braid_arange")?
        .launch(grid(&device, n))
        .arg(&mut *z)
        .arg(start)
        .arg(step)
        .arg(count(n))
        .run()
}

pub(crate) fn neg<T: Scalar>(x: &DeviceArray<T>) -> Result<DeviceArray<T>> {
    let mut z = x.empty_like()?;
    let n = x.len();
    if n == 0 {
        return Ok(z);
    }
    let builtins = Builtins::get::<T>(x.device())?;
    builtins
        .kernel("braid_neg")?
        .launch(grid(x.device(), n))
        .arg(&mut z)
        .arg(x)
        .arg(count(n))
        .run()?;
    Ok(z)
}

pub(crate) fn binary<T: Scalar>(
    op: Op,
    x: &DeviceArray<T>,
    y: &DeviceArray<T>,
) -> Result<DeviceArray<T>> {
    if x.shape() != y.shape() {
        return Err(Error::Shape(format!(
            "element-wise {} of arrays of shapes {:?} and {:?}",
            op.name(),
            x.shape(),
            y.shape()
        )));
    }
    let mut z = x.empty_like()?;
    let n = x.len();
    if n == 0 {
        return Ok(z);
    }
    let builtins = Builtins::get::<T>(x.device())?;
    builtins
        .kernel(&format!("braid_{}", op.name()))?
        .launch(grid(x.device(), n))
        .arg(&mut z)
        .arg(x)
        .arg(y)
        .arg(count(n))
        .run()?;
    Ok(z)
}

/// `x op s`, or `s op x` when `scalar_first`.
pub(crate) fn scalar<T: Scalar>(
    op: Op,
    x: &DeviceArray<T>,
    s: T,
    scalar_first: bool,
) -> Result<DeviceArray<T>> {
    let mut z = x.empty_like()?;
    let n = x.len();
    if n == 0 {
        return Ok(z);
    }
    let name = if scalar_first {
        format!("braid_r{}_scalar", op.name())
    } else {
        format!("braid_{}_scalar", op.name())
    };
    let builtins = Builtins::get::<T>(x.device())?;
    builtins
        .kernel(&name)?
        .launch(grid(x.device(), n))
        .arg(&mut z)
        .arg(x)
        .arg(s)
        .arg(count(n))
        .run()?;
    Ok(z)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cuda::nvrtc;

    /// Every built-in kernel, for every element type, compiles with NVRTC (no GPU needed).
    #[test]
    fn every_builtin_compiles_to_ptx() {
        if !nvrtc::nvrtc_available() {
            crate::cuda::testing::nvrtc_missing("every_builtin_compiles_to_ptx");
            return;
        }
        for t in [
            "float",
            "double",
            "int",
            "unsigned int",
            "long long",
            "unsigned long long",
        ] {
            let ptx = SourceModule::compile_only(&source(t))
                .unwrap_or_else(|e| panic!("built-in kernels for {t}: {e}"));
            for name in names() {
                assert!(
                    ptx.contains(&format!(".entry {name}(")),
                    "{t}: {name} missing"
                );
            }
        }
    }
}

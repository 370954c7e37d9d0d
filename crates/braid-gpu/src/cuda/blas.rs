//! cuBLAS on device arrays: the BLAS routines of NumbaPro's `numbapro.cudalib.cublas`
//! recipe (gemm, axpy, dot, nrm2, scal, asum), with numpy's row-major matrices.

use std::sync::{Arc, OnceLock};

use cudarc::cublas::sys::{self, cublasHandle_t, cublasOperation_t, cublasStatus_t};
use cudarc::cublas::{CudaBlas, Gemm, GemmConfig};
use cudarc::driver::CudaSlice;
use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::scalar::Scalar;

use super::array::DeviceArray;
use super::device::Device;

/// Whether cuBLAS reads a matrix as it is or transposed (BLAS's `'N'` and `'T'`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transpose {
    /// As stored.
    No,
    /// Transposed.
    Yes,
}

impl Transpose {
    fn op(self) -> cublasOperation_t {
        match self {
            Transpose::No => cublasOperation_t::CUBLAS_OP_N,
            Transpose::Yes => cublasOperation_t::CUBLAS_OP_T,
        }
    }

    /// (rows, cols) of op(M) for a stored (rows, cols) matrix.
    fn apply(self, (rows, cols): (usize, usize)) -> (usize, usize) {
        match self {
            Transpose::No => (rows, cols),
            Transpose::Yes => (cols, rows),
        }
    }
}

pub(crate) mod sealed {
    use super::*;

    /// The cuBLAS entry points of one element type.
    pub trait BlasRoutines: Scalar + Sized {
        /// # Safety
        /// As cuBLAS's gemm: the configuration must fit the arrays.
        unsafe fn gemm(
            blas: &CudaBlas,
            cfg: GemmConfig<Self>,
            a: &CudaSlice<Self>,
            b: &CudaSlice<Self>,
            c: &mut CudaSlice<Self>,
        ) -> Result<(), cudarc::cublas::result::CublasError>;
        /// # Safety
        /// The pointers must be valid device arrays of at least `n` elements.
        unsafe fn axpy(h: cublasHandle_t, n: i64, alpha: &Self, x: u64, y: u64) -> cublasStatus_t;
        /// # Safety
        /// As `axpy`; `result` is a host pointer.
        unsafe fn dot(
            h: cublasHandle_t,
            n: i64,
            x: u64,
            y: u64,
            result: &mut Self,
        ) -> cublasStatus_t;
        /// # Safety
        /// As `axpy`.
        unsafe fn nrm2(h: cublasHandle_t, n: i64, x: u64, result: &mut Self) -> cublasStatus_t;
        /// # Safety
        /// As `axpy`.
        unsafe fn asum(h: cublasHandle_t, n: i64, x: u64, result: &mut Self) -> cublasStatus_t;
        /// # Safety
        /// As `axpy`.
        unsafe fn scal(h: cublasHandle_t, n: i64, alpha: &Self, x: u64) -> cublasStatus_t;
    }
}

macro_rules! routines {
    ($t:ty, $axpy:ident, $dot:ident, $nrm2:ident, $asum:ident, $scal:ident) => {
        // Each method's safety contract is the one `sealed::BlasRoutines` documents; the
        // `// SAFETY:` comments inside say how each call meets it.
        impl sealed::BlasRoutines for $t {
            unsafe fn gemm(
                blas: &CudaBlas,
                cfg: GemmConfig<$t>,
                a: &CudaSlice<$t>,
                b: &CudaSlice<$t>,
                c: &mut CudaSlice<$t>,
            ) -> Result<(), cudarc::cublas::result::CublasError> {
                // SAFETY: the caller guarantees the configuration fits the arrays.
                unsafe { Gemm::<$t>::gemm(blas, cfg, a, b, c) }
            }
            unsafe fn axpy(
                h: cublasHandle_t,
                n: i64,
                alpha: &Self,
                x: u64,
                y: u64,
            ) -> cublasStatus_t {
                // SAFETY: the caller passes device arrays of at least `n` elements.
                unsafe { sys::$axpy(h, n, alpha, x as *const $t, 1, y as *mut $t, 1) }
            }
            unsafe fn dot(
                h: cublasHandle_t,
                n: i64,
                x: u64,
                y: u64,
                result: &mut Self,
            ) -> cublasStatus_t {
                // SAFETY: as above; `result` is a valid host location (host pointer mode).
                unsafe { sys::$dot(h, n, x as *const $t, 1, y as *const $t, 1, result) }
            }
            unsafe fn nrm2(h: cublasHandle_t, n: i64, x: u64, result: &mut Self) -> cublasStatus_t {
                // SAFETY: as above.
                unsafe { sys::$nrm2(h, n, x as *const $t, 1, result) }
            }
            unsafe fn asum(h: cublasHandle_t, n: i64, x: u64, result: &mut Self) -> cublasStatus_t {
                // SAFETY: as above.
                unsafe { sys::$asum(h, n, x as *const $t, 1, result) }
            }
            unsafe fn scal(h: cublasHandle_t, n: i64, alpha: &Self, x: u64) -> cublasStatus_t {
                // SAFETY: as above.
                unsafe { sys::$scal(h, n, alpha, x as *mut $t, 1) }
            }
        }
        impl BlasScalar for $t {}
    };
}

/// An element type cuBLAS computes with: `f32` (the `S` routines) or `f64` (`D`). Sealed.
pub trait BlasScalar: sealed::BlasRoutines {}

routines!(
    f32,
    cublasSaxpy_v2_64,
    cublasSdot_v2_64,
    cublasSnrm2_v2_64,
    cublasSasum_v2_64,
    cublasSscal_v2_64
);
routines!(
    f64,
    cublasDaxpy_v2_64,
    cublasDdot_v2_64,
    cublasDnrm2_v2_64,
    cublasDasum_v2_64,
    cublasDscal_v2_64
);

/// True when cuBLAS (`libcublas.so`) can be loaded; checked once.
pub fn cublas_available() -> bool {
    static PRESENT: OnceLock<bool> = OnceLock::new();
    // SAFETY: `is_culib_present` only tries to dlopen the candidate library names and
    // closes what it opened.
    *PRESENT.get_or_init(|| unsafe { sys::is_culib_present() })
}

/// A cuBLAS handle on one device, working on [`DeviceArray`]s in the device's stream order
/// (NumbaPro's `cublas.Blas()`). Matrices are row-major, as numpy's are; braid passes
/// them to column-major cuBLAS without copying.
///
/// ```
/// use braid_gpu::{Blas, Device, DeviceArray, Transpose};
///
/// # fn main() -> braid_gpu::Result<()> {
/// let Ok(device) = Device::first() else { return Ok(()) }; // no GPU here
/// let blas = Blas::new(&device)?;
/// let a = DeviceArray::from_matrix(&device, 2, 3, &[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0])?;
/// let b = DeviceArray::from_matrix(&device, 3, 1, &[1.0f32, 1.0, 1.0])?;
/// let mut c = DeviceArray::zeros_shaped(&device, &[2, 1])?;
/// blas.gemm(Transpose::No, Transpose::No, 1.0, &a, &b, 0.0, &mut c)?;
/// assert_eq!(c.to_vec()?, [6.0, 15.0]);
/// assert_eq!(blas.dot(&a, &a)?, 91.0);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Blas {
    handle: Arc<Mutex<CudaBlas>>,
    device: Device,
}

fn status(what: &'static str, s: cublasStatus_t) -> Result<()> {
    s.result().map_err(|e| Error::cuda(what, e))
}

fn dim(what: &str, n: usize) -> Result<i32> {
    i32::try_from(n).map_err(|_| {
        Error::Invalid(format!(
            "{what} = {n} is beyond cuBLAS's 32-bit matrix dimensions"
        ))
    })
}

impl Blas {
    /// Creates a cuBLAS handle on `device`, bound to its stream.
    ///
    /// # Errors
    /// [`Error::LibraryMissing`] when cuBLAS is not installed; [`Error::Driver`].
    pub fn new(device: &Device) -> Result<Blas> {
        if !cublas_available() {
            return Err(Error::LibraryMissing {
                library: "cuBLAS (libcublas.so)",
                hint: "install the CUDA toolkit's cuBLAS, or the pip wheel `nvidia-cublas`, and put its lib folder on LD_LIBRARY_PATH",
            });
        }
        let handle = CudaBlas::new(device.inner.stream.clone())
            .map_err(|e| Error::cuda("cuBLAS handle creation", e))?;
        Ok(Blas {
            handle: Arc::new(Mutex::new(handle)),
            device: device.clone(),
        })
    }

    /// The device the handle works on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    fn same_device<T: Scalar>(&self, arrays: &[&DeviceArray<T>]) -> Result<()> {
        if arrays.iter().all(|a| *a.device() == self.device) {
            Ok(())
        } else {
            Err(Error::Invalid(
                "a cuBLAS call on arrays of another device".into(),
            ))
        }
    }

    /// `C = alpha * op(A) @ op(B) + beta * C` for row-major matrices (BLAS `gemm`).
    ///
    /// # Errors
    /// [`Error::Shape`] when the shapes do not chain (op(A) is m x k, op(B) k x n, C m x n)
    /// or an argument is not 2-D; [`Error::Driver`].
    #[allow(clippy::too_many_arguments)]
    pub fn gemm<T: BlasScalar>(
        &self,
        trans_a: Transpose,
        trans_b: Transpose,
        alpha: T,
        a: &DeviceArray<T>,
        b: &DeviceArray<T>,
        beta: T,
        c: &mut DeviceArray<T>,
    ) -> Result<()> {
        self.same_device(&[a, b, c])?;
        let (sa, sb, sc) = (a.matrix_shape()?, b.matrix_shape()?, c.matrix_shape()?);
        let (m, k) = trans_a.apply(sa);
        let (k2, n) = trans_b.apply(sb);
        if k != k2 || sc != (m, n) {
            return Err(Error::Shape(format!(
                "gemm: op(A) is {m}x{k}, op(B) {k2}x{n}, C {}x{}",
                sc.0, sc.1
            )));
        }
        if m == 0 || n == 0 {
            return Ok(());
        }
        // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: cuBLAS gets B
        // first, each with its stored row length as leading dimension.
        let cfg = GemmConfig {
            transa: trans_b.op(),
            transb: trans_a.op(),
            m: dim("n", n)?,
            n: dim("m", m)?,
            k: dim("k", k)?,
            alpha,
            lda: dim("ldb", sb.1.max(1))?,
            ldb: dim("lda", sa.1.max(1))?,
            beta,
            ldc: dim("ldc", n)?,
        };
        let handle = self.handle.lock();
        // SAFETY: the shapes were checked to chain, and each leading dimension is the
        // stored row length of a row-major matrix of that many columns, so cuBLAS reads and
        // writes only inside the three arrays, which live on this handle's device and
        // stream. (With k = 0 cuBLAS reads neither A nor B and only scales C by beta.)
        unsafe { T::gemm(&handle, cfg, b.raw(), a.raw(), c.raw_mut()) }
            .map_err(|e| Error::cuda("cuBLAS gemm", e))
    }

    /// `y = alpha * x + y` (BLAS `axpy`).
    ///
    /// # Errors
    /// [`Error::Shape`] when the lengths differ; [`Error::Driver`].
    pub fn axpy<T: BlasScalar>(
        &self,
        alpha: T,
        x: &DeviceArray<T>,
        y: &mut DeviceArray<T>,
    ) -> Result<()> {
        self.same_device(&[x, y])?;
        same_len("axpy", x, y)?;
        if x.is_empty() {
            return Ok(());
        }
        let handle = self.handle.lock();
        let (xp, yp) = (x.device_ptr(), y.device_ptr());
        // SAFETY: x and y are live arrays of the same length on this handle's device.
        status("cuBLAS axpy", unsafe {
            T::axpy(*handle.handle(), len(x), &alpha, xp, yp)
        })
    }

    /// The dot product of `x` and `y` (BLAS `dot`); waits for the result.
    ///
    /// # Errors
    /// [`Error::Shape`] when the lengths differ; [`Error::Driver`].
    pub fn dot<T: BlasScalar>(&self, x: &DeviceArray<T>, y: &DeviceArray<T>) -> Result<T> {
        self.same_device(&[x, y])?;
        same_len("dot", x, y)?;
        let mut result = T::default();
        if x.is_empty() {
            return Ok(result);
        }
        let handle = self.handle.lock();
        let (xp, yp) = (x.device_ptr(), y.device_ptr());
        // SAFETY: x and y are live arrays of the same length on this handle's device;
        // `result` is a host location, cuBLAS's default pointer mode.
        status("cuBLAS dot", unsafe {
            T::dot(*handle.handle(), len(x), xp, yp, &mut result)
        })?;
        Ok(result)
    }

    /// The Euclidean norm of `x` (BLAS `nrm2`); waits for the result.
    ///
    /// # Errors
    /// [`Error::Driver`].
    pub fn nrm2<T: BlasScalar>(&self, x: &DeviceArray<T>) -> Result<T> {
        self.same_device(&[x])?;
        let mut result = T::default();
        if x.is_empty() {
            return Ok(result);
        }
        let handle = self.handle.lock();
        // SAFETY: x is a live array on this handle's device; `result` is a host location.
        status("cuBLAS nrm2", unsafe {
            T::nrm2(*handle.handle(), len(x), x.device_ptr(), &mut result)
        })?;
        Ok(result)
    }

    /// The sum of absolute values of `x` (BLAS `asum`); waits for the result.
    ///
    /// # Errors
    /// [`Error::Driver`].
    pub fn asum<T: BlasScalar>(&self, x: &DeviceArray<T>) -> Result<T> {
        self.same_device(&[x])?;
        let mut result = T::default();
        if x.is_empty() {
            return Ok(result);
        }
        let handle = self.handle.lock();
        // SAFETY: x is a live array on this handle's device; `result` is a host location.
        status("cuBLAS asum", unsafe {
            T::asum(*handle.handle(), len(x), x.device_ptr(), &mut result)
        })?;
        Ok(result)
    }

    /// `x = alpha * x` (BLAS `scal`).
    ///
    /// # Errors
    /// [`Error::Driver`].
    pub fn scal<T: BlasScalar>(&self, alpha: T, x: &mut DeviceArray<T>) -> Result<()> {
        self.same_device(&[x])?;
        if x.is_empty() {
            return Ok(());
        }
        let handle = self.handle.lock();
        // SAFETY: x is a live array on this handle's device.
        status("cuBLAS scal", unsafe {
            T::scal(*handle.handle(), len(x), &alpha, x.device_ptr())
        })
    }

    /// Calls cuBLAS's gemm with no checks and no shape arithmetic: the baseline `braid
    /// bench gpu` measures [`Blas::gemm`] against. Square n x n column-major matrices.
    #[doc(hidden)]
    pub fn __sgemm_unchecked(
        &self,
        n: usize,
        a: &DeviceArray<f32>,
        b: &DeviceArray<f32>,
        c: &mut DeviceArray<f32>,
    ) -> Result<()> {
        let n = dim("n", n)?;
        let cfg = GemmConfig {
            transa: cublasOperation_t::CUBLAS_OP_N,
            transb: cublasOperation_t::CUBLAS_OP_N,
            m: n,
            n,
            k: n,
            alpha: 1.0f32,
            lda: n,
            ldb: n,
            beta: 0.0f32,
            ldc: n,
        };
        let needed = (n as usize) * (n as usize);
        if a.len() < needed || b.len() < needed || c.len() < needed {
            return Err(Error::Shape("the matrices are smaller than n x n".into()));
        }
        let handle = self.handle.lock();
        // SAFETY: the three arrays hold at least n * n elements each (checked above) and
        // live on this handle's device.
        unsafe { handle.gemm(cfg, a.raw(), b.raw(), c.raw_mut()) }
            .map_err(|e| Error::cuda("cuBLAS gemm", e))
    }
}

fn same_len<T: Scalar>(what: &str, x: &DeviceArray<T>, y: &DeviceArray<T>) -> Result<()> {
    if x.len() == y.len() {
        Ok(())
    } else {
        Err(Error::Shape(format!(
            "{what}: x has {} elements, y {}",
            x.len(),
            y.len()
        )))
    }
}

fn len<T: Scalar>(x: &DeviceArray<T>) -> i64 {
    i64::try_from(x.len()).unwrap_or(i64::MAX)
}

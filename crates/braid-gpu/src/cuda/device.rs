//! CUDA devices: finding them without panicking when there is no driver, and their
//! properties (PyCUDA's `pycuda.driver.Device`).

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, OnceLock};

use cudarc::driver::sys::CUdevice_attribute as Attr;
use cudarc::driver::{CudaContext, CudaModule, CudaStream};
use parking_lot::Mutex;

use crate::error::{Backend, Error, Result};

/// What a CUDA device is and what it can do, read once when the device is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeviceProperties {
    /// The device's name, e.g. `NVIDIA H100 80GB HBM3`.
    pub name: String,
    /// Compute capability (major, minor): (9, 0) for Hopper.
    pub compute_capability: (u32, u32),
    /// Device memory in bytes.
    pub total_memory: u64,
    /// Streaming multiprocessors.
    pub multiprocessors: u32,
    /// Most threads one block may have.
    pub max_threads_per_block: u32,
    /// Most threads resident on one multiprocessor.
    pub max_threads_per_multiprocessor: u32,
    /// Largest block in each dimension.
    pub max_block_dim: (u32, u32, u32),
    /// Largest grid in each dimension.
    pub max_grid_dim: (u32, u32, u32),
    /// Shared memory a block gets without asking, in bytes (48 KiB).
    pub shared_memory_per_block: u32,
    /// Shared memory a block may have when the kernel asks for it, in bytes.
    pub shared_memory_per_block_optin: u32,
    /// Threads per warp.
    pub warp_size: u32,
    /// Peak core clock in kHz.
    pub clock_rate_khz: u32,
    /// Peak memory clock in kHz.
    pub memory_clock_rate_khz: u32,
    /// Memory bus width in bits.
    pub memory_bus_width: u32,
    /// L2 cache size in bytes.
    pub l2_cache_size: u32,
}

/// One CUDA device, opened (its primary context retained) and ready for work.
///
/// Cheap to clone; clones share the context, the stream every operation is ordered on,
/// and the cache of loaded kernels. Opening the same ordinal twice gives the same device.
/// Every operation braid issues on a device runs in order on one stream, so results are
/// never read before the kernels that write them have finished.
#[derive(Clone)]
pub struct Device {
    pub(crate) inner: Arc<DeviceInner>,
}

pub(crate) struct DeviceInner {
    pub(crate) ctx: Arc<CudaContext>,
    pub(crate) stream: Arc<CudaStream>,
    pub(crate) properties: DeviceProperties,
    pub(crate) ordinal: usize,
    /// Loaded modules by PTX text: a kernel compiled once is loaded once per device.
    pub(crate) modules: Mutex<HashMap<Arc<str>, Arc<CudaModule>>>,
    /// Kernels braid generates for its own operations, by a key naming the operation.
    pub(crate) builtins: Mutex<HashMap<String, Arc<dyn std::any::Any + Send + Sync>>>,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("ordinal", &self.inner.ordinal)
            .field("name", &self.inner.properties.name)
            .finish()
    }
}

impl PartialEq for Device {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for Device {}

/// True when the CUDA driver library (`libcuda.so`) can be loaded; checked once.
pub fn cuda_driver_available() -> bool {
    static PRESENT: OnceLock<bool> = OnceLock::new();
    // SAFETY: `is_culib_present` only tries to dlopen the candidate library names and
    // closes what it opened.
    *PRESENT.get_or_init(|| unsafe { cudarc::driver::sys::is_culib_present() })
}

fn no_device(reason: impl Into<String>) -> Error {
    Error::NoDevice {
        backend: Backend::Cuda,
        reason: reason.into(),
    }
}

/// Runs a driver call that cudarc may turn into a panic (a symbol missing from an old
/// driver) and makes any panic a `NoDevice` error.
fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("unknown panic");
            Err(no_device(format!(
                "the CUDA driver could not {what} ({message})"
            )))
        }
    }
}

impl Device {
    /// How many CUDA devices the driver sees; 0 when the driver loads but finds none.
    ///
    /// # Errors
    /// [`Error::NoDevice`] when the driver library is missing or fails to initialise (no
    /// NVIDIA kernel module, a driver too old for braid).
    pub fn count() -> Result<usize> {
        if !cuda_driver_available() {
            return Err(no_device(
                "the CUDA driver (libcuda.so) is not installed on this machine",
            ));
        }
        guarded("count the devices", || {
            let n = CudaContext::device_count()
                .map_err(|e| no_device(format!("the CUDA driver failed to start: {e}")))?;
            Ok(usize::try_from(n).unwrap_or(0))
        })
    }

    /// Opens device `ordinal` (0 is the first), or returns the device already opened.
    ///
    /// # Errors
    /// [`Error::NoDevice`] without a driver or when there is no device of that ordinal;
    /// [`Error::Driver`] when the driver refuses the context.
    pub fn new(ordinal: usize) -> Result<Device> {
        static OPENED: OnceLock<Mutex<HashMap<usize, Device>>> = OnceLock::new();
        let count = Device::count()?;
        if ordinal >= count {
            return Err(no_device(if count == 0 {
                "the CUDA driver reports no device".to_string()
            } else {
                format!("there is no device {ordinal}; the driver reports {count}")
            }));
        }
        let opened = OPENED.get_or_init(Default::default);
        let mut opened = opened.lock();
        if let Some(device) = opened.get(&ordinal) {
            return Ok(device.clone());
        }
        let device = guarded("open the device", || Device::open(ordinal))?;
        opened.insert(ordinal, device.clone());
        Ok(device)
    }

    /// The first device, like PyCUDA's `pycuda.autoinit`.
    ///
    /// # Errors
    /// [`Error::NoDevice`] when there is no driver or no device.
    pub fn first() -> Result<Device> {
        Device::new(0)
    }

    /// Every device the driver sees, in ordinal order (empty when there are none).
    ///
    /// # Errors
    /// [`Error::NoDevice`] when there is no driver; [`Error::Driver`] when a device cannot
    /// be opened.
    pub fn all() -> Result<Vec<Device>> {
        (0..Device::count()?).map(Device::new).collect()
    }

    fn open(ordinal: usize) -> Result<Device> {
        let ctx = CudaContext::new(ordinal).map_err(|e| Error::cuda("context creation", e))?;
        // SAFETY: braid issues all work of a context on its one stream (below), so the
        // per-allocation events that order work across streams are never needed; without
        // them an allocation costs no event creation.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.default_stream();
        let attr = |a: Attr| -> Result<u32> {
            ctx.attribute(a)
                .map(|v| u32::try_from(v).unwrap_or(0))
                .map_err(|e| Error::cuda("device attribute query", e))
        };
        let properties = DeviceProperties {
            name: ctx
                .name()
                .map_err(|e| Error::cuda("device name query", e))?,
            compute_capability: (
                attr(Attr::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?,
                attr(Attr::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?,
            ),
            total_memory: ctx
                .total_mem()
                .map_err(|e| Error::cuda("device memory query", e))?
                as u64,
            multiprocessors: attr(Attr::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?,
            max_threads_per_block: attr(Attr::CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK)?,
            max_threads_per_multiprocessor: attr(
                Attr::CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR,
            )?,
            max_block_dim: (
                attr(Attr::CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X)?,
                attr(Attr::CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Y)?,
                attr(Attr::CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z)?,
            ),
            max_grid_dim: (
                attr(Attr::CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X)?,
                attr(Attr::CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y)?,
                attr(Attr::CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z)?,
            ),
            shared_memory_per_block: attr(Attr::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK)?,
            shared_memory_per_block_optin: attr(
                Attr::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
            )?,
            warp_size: attr(Attr::CU_DEVICE_ATTRIBUTE_WARP_SIZE)?,
            clock_rate_khz: attr(Attr::CU_DEVICE_ATTRIBUTE_CLOCK_RATE)?,
            memory_clock_rate_khz: attr(Attr::CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE)?,
            memory_bus_width: attr(Attr::CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH)?,
            l2_cache_size: attr(Attr::CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE)?,
        };
        tracing::debug!(ordinal, name = %properties.name, "opened a CUDA device");
        Ok(Device {
            inner: Arc::new(DeviceInner {
                ctx,
                stream,
                properties,
                ordinal,
                modules: Mutex::new(HashMap::new()),
                builtins: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The device's ordinal.
    pub fn ordinal(&self) -> usize {
        self.inner.ordinal
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        &self.inner.properties.name
    }

    /// Everything braid read about the device when it opened it.
    pub fn properties(&self) -> &DeviceProperties {
        &self.inner.properties
    }

    /// Compute capability (major, minor).
    pub fn compute_capability(&self) -> (u32, u32) {
        self.inner.properties.compute_capability
    }

    /// Free and total device memory in bytes, as the driver reports them now.
    ///
    /// # Errors
    /// [`Error::Driver`] when the driver cannot answer.
    pub fn memory_info(&self) -> Result<(u64, u64)> {
        let (free, total) = self
            .inner
            .ctx
            .mem_get_info()
            .map_err(|e| Error::cuda("memory query", e))?;
        Ok((free as u64, total as u64))
    }

    /// Waits until all work braid has issued on the device has finished.
    ///
    /// # Errors
    /// [`Error::Driver`] with the first error a kernel raised (an out-of-bounds access,
    /// say).
    pub fn synchronize(&self) -> Result<()> {
        self.inner
            .stream
            .synchronize()
            .map_err(|e| Error::cuda("synchronize", e))
    }

    /// The NVRTC option that targets this device (`--gpu-architecture=compute_90`).
    pub(crate) fn arch_option(&self) -> String {
        let (major, minor) = self.compute_capability();
        format!("--gpu-architecture=compute_{major}{minor}")
    }

    /// A built-in kernel set, made by `make` the first time `key` is asked for.
    pub(crate) fn builtin<T: Send + Sync + 'static>(
        &self,
        key: &str,
        make: impl FnOnce() -> Result<T>,
    ) -> Result<Arc<T>> {
        if let Some(found) = self.inner.builtins.lock().get(key)
            && let Ok(found) = found.clone().downcast::<T>()
        {
            return Ok(found);
        }
        let made = Arc::new(make()?);
        self.inner
            .builtins
            .lock()
            .insert(key.to_string(), made.clone());
        Ok(made)
    }
}

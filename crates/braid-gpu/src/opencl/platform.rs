//! OpenCL platforms and devices (PyOpenCL's `get_platforms()`, `Platform`, `Device`).

use opencl3::device::{
    CL_DEVICE_TYPE_ACCELERATOR, CL_DEVICE_TYPE_ALL, CL_DEVICE_TYPE_CPU, CL_DEVICE_TYPE_GPU, Device,
};
use opencl3::error_codes::{CL_DEVICE_NOT_FOUND, DLOPEN_RUNTIME_LOAD_FAILED};
use opencl3::platform::{Platform, get_platforms};

use crate::error::{Backend, Error, Result};

/// `CL_PLATFORM_NOT_FOUND_KHR`: the ICD loader found no platform.
const CL_PLATFORM_NOT_FOUND_KHR: i32 = -1001;

fn no_device(reason: impl Into<String>) -> Error {
    Error::NoDevice {
        backend: Backend::OpenCl,
        reason: reason.into(),
    }
}

/// An OpenCL platform: one vendor's implementation (PoCL, NVIDIA, Intel, ...).
#[derive(Debug, Clone)]
pub struct ClPlatform {
    platform: Platform,
}

impl ClPlatform {
    /// Every installed platform (`pyopencl.get_platforms()`).
    ///
    /// # Errors
    /// [`Error::NoDevice`] when libOpenCL cannot be loaded or no platform is installed.
    pub fn all() -> Result<Vec<ClPlatform>> {
        match get_platforms() {
            Ok(platforms) if platforms.is_empty() => {
                Err(no_device("the OpenCL loader found no platform"))
            }
            Ok(platforms) => Ok(platforms
                .into_iter()
                .map(|platform| ClPlatform { platform })
                .collect()),
            Err(e) if e.0 == DLOPEN_RUNTIME_LOAD_FAILED => Err(no_device(
                "the OpenCL loader (libOpenCL.so.1) is not installed; on Debian: apt-get install ocl-icd-libopencl1 pocl-opencl-icd",
            )),
            Err(e) if e.0 == CL_PLATFORM_NOT_FOUND_KHR => Err(no_device(
                "no OpenCL platform is installed (for a CPU one: apt-get install pocl-opencl-icd)",
            )),
            Err(e) => Err(no_device(format!("the OpenCL loader failed: {e}"))),
        }
    }

    /// The platform's name (`Portable Computing Language`).
    ///
    /// # Errors
    /// [`Error::Driver`] when the platform cannot answer.
    pub fn name(&self) -> Result<String> {
        self.platform
            .name()
            .map_err(|e| Error::opencl("platform query", e))
    }

    /// The platform's vendor.
    ///
    /// # Errors
    /// [`Error::Driver`] when the platform cannot answer.
    pub fn vendor(&self) -> Result<String> {
        self.platform
            .vendor()
            .map_err(|e| Error::opencl("platform query", e))
    }

    /// The OpenCL version the platform implements (`OpenCL 3.0 PoCL ...`).
    ///
    /// # Errors
    /// [`Error::Driver`] when the platform cannot answer.
    pub fn version(&self) -> Result<String> {
        self.platform
            .version()
            .map_err(|e| Error::opencl("platform query", e))
    }

    /// The platform's devices (empty when it has none).
    ///
    /// # Errors
    /// [`Error::Driver`] when the platform cannot answer.
    pub fn devices(&self) -> Result<Vec<ClDevice>> {
        match self.platform.get_devices(CL_DEVICE_TYPE_ALL) {
            Ok(ids) => Ok(ids
                .into_iter()
                .map(|id| ClDevice {
                    device: Device::new(id),
                })
                .collect()),
            Err(e) if e.0 == CL_DEVICE_NOT_FOUND => Ok(Vec::new()),
            Err(e) => Err(Error::opencl("device query", e)),
        }
    }
}

/// What kind of processor an OpenCL device is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClDeviceType {
    /// A graphics processor.
    Gpu,
    /// A CPU (PoCL's devices are).
    Cpu,
    /// An accelerator card.
    Accelerator,
    /// Anything else.
    Other,
}

/// One OpenCL device and its properties.
#[derive(Debug, Clone)]
pub struct ClDevice {
    pub(crate) device: Device,
}

impl PartialEq for ClDevice {
    fn eq(&self, other: &Self) -> bool {
        self.device.id() == other.device.id()
    }
}

macro_rules! query {
    ($(#[$doc:meta] $name:ident -> $t:ty = $call:ident $(as $conv:ty)?;)*) => {$(
        #[$doc]
        ///
        /// # Errors
        /// [`Error::Driver`] when the device cannot answer.
        pub fn $name(&self) -> Result<$t> {
            self.device
                .$call()
                .map(|v| v $(as $conv)?)
                .map_err(|e| Error::opencl("device query", e))
        }
    )*};
}

impl ClDevice {
    /// Every device of every platform, GPUs first.
    ///
    /// # Errors
    /// [`Error::NoDevice`] when there is no platform or no device.
    pub fn all() -> Result<Vec<ClDevice>> {
        let mut devices = Vec::new();
        for platform in ClPlatform::all()? {
            devices.extend(platform.devices()?);
        }
        if devices.is_empty() {
            return Err(no_device("the OpenCL platforms have no device"));
        }
        devices.sort_by_key(|d| d.kind().map_or(3, |k| k as u8));
        Ok(devices)
    }

    /// The first GPU, else the first device of any kind (`create_some_context`'s choice).
    ///
    /// # Errors
    /// [`Error::NoDevice`] when there is no platform or no device.
    pub fn first() -> Result<ClDevice> {
        ClDevice::all()?
            .into_iter()
            .next()
            .ok_or_else(|| no_device("the OpenCL platforms have no device"))
    }

    /// What kind of processor this is.
    ///
    /// # Errors
    /// [`Error::Driver`] when the device cannot answer.
    pub fn kind(&self) -> Result<ClDeviceType> {
        let t = self
            .device
            .dev_type()
            .map_err(|e| Error::opencl("device query", e))?;
        Ok(if t & CL_DEVICE_TYPE_GPU != 0 {
            ClDeviceType::Gpu
        } else if t & CL_DEVICE_TYPE_CPU != 0 {
            ClDeviceType::Cpu
        } else if t & CL_DEVICE_TYPE_ACCELERATOR != 0 {
            ClDeviceType::Accelerator
        } else {
            ClDeviceType::Other
        })
    }

    query! {
        /// The device's name.
        name -> String = name;
        /// The device's vendor.
        vendor -> String = vendor;
        /// The OpenCL version the device supports.
        version -> String = version;
        /// The driver's version.
        driver_version -> String = driver_version;
        /// Parallel compute units (cores of a CPU, multiprocessors of a GPU).
        compute_units -> u32 = max_compute_units;
        /// Global memory in bytes.
        global_memory -> u64 = global_mem_size;
        /// Local (work-group shared) memory in bytes.
        local_memory -> u64 = local_mem_size;
        /// Largest single allocation in bytes.
        max_allocation -> u64 = max_mem_alloc_size;
        /// Most work-items in a work-group.
        max_work_group_size -> usize = max_work_group_size;
        /// Peak clock in MHz.
        max_clock_mhz -> u32 = max_clock_frequency;
    }

    /// True when the device computes in double precision (`cl_khr_fp64`).
    ///
    /// # Errors
    /// [`Error::Driver`] when the device cannot answer.
    pub fn supports_f64(&self) -> Result<bool> {
        let extensions = self
            .device
            .extensions()
            .map_err(|e| Error::opencl("device query", e))?;
        Ok(extensions.split_whitespace().any(|e| e == "cl_khr_fp64"))
    }
}

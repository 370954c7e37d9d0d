//! Events in a device's stream, for timing GPU work (PyCUDA's `pycuda.driver.Event`).

use std::time::Duration;

use cudarc::driver::CudaEvent;
use cudarc::driver::sys::CUevent_flags;

use crate::error::{Error, Result};

use super::device::Device;

/// A marker in a device's stream: recorded after the work queued so far, complete when
/// that work has run. Two events time the work between them on the device's own clock.
///
/// ```
/// use braid_gpu::{Device, DeviceArray, Event};
///
/// # fn main() -> braid_gpu::Result<()> {
/// let Ok(device) = Device::first() else { return Ok(()) }; // no GPU here
/// let (start, end) = (Event::new(&device)?, Event::new(&device)?);
/// start.record()?;
/// let a = DeviceArray::full(&device, 1 << 20, 1.0f32)?;
/// end.record()?;
/// let elapsed = end.elapsed_since(&start)?;
/// assert!(elapsed.as_secs_f64() >= 0.0 && a.len() == 1 << 20);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Event {
    event: CudaEvent,
    device: Device,
}

impl Event {
    /// A timing event on `device`.
    ///
    /// # Errors
    /// [`Error::Driver`].
    pub fn new(device: &Device) -> Result<Event> {
        let event = device
            .inner
            .ctx
            .new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
            .map_err(|e| Error::cuda("event creation", e))?;
        Ok(Event {
            event,
            device: device.clone(),
        })
    }

    /// Records the event after the work queued on the device so far.
    ///
    /// # Errors
    /// [`Error::Driver`].
    pub fn record(&self) -> Result<()> {
        self.event
            .record(&self.device.inner.stream)
            .map_err(|e| Error::cuda("event record", e))
    }

    /// Waits until the work before the last [`record`](Event::record) has run.
    ///
    /// # Errors
    /// [`Error::Driver`], including an error raised by that work.
    pub fn synchronize(&self) -> Result<()> {
        self.event
            .synchronize()
            .map_err(|e| Error::cuda("event synchronize", e))
    }

    /// The device time from `earlier` to `self` (PyCUDA's `time_since`, in a `Duration`);
    /// waits for `self` to complete.
    ///
    /// # Errors
    /// [`Error::Driver`] when either event was never recorded.
    pub fn elapsed_since(&self, earlier: &Event) -> Result<Duration> {
        self.synchronize()?;
        let ms = earlier
            .event
            .elapsed_ms(&self.event)
            .map_err(|e| Error::cuda("event timing", e))?;
        Ok(Duration::from_secs_f64(f64::from(ms.max(0.0)) / 1e3))
    }
}

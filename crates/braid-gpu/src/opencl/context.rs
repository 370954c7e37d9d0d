//! OpenCL contexts and command queues (PyOpenCL's `Context`, `create_some_context` and
//! `CommandQueue`).

use std::collections::HashMap;
use std::sync::Arc;

use opencl3::command_queue::{CL_QUEUE_PROFILING_ENABLE, CommandQueue};
use opencl3::context::Context;
use opencl3::program::Program;
use parking_lot::Mutex;

use crate::error::{Error, Result};

use super::platform::ClDevice;

/// An OpenCL context on one device, with a cache of the programs built in it.
/// Cheap to clone; clones share the context.
#[derive(Clone)]
pub struct ClContext {
    pub(crate) inner: Arc<ContextInner>,
}

pub(crate) struct ContextInner {
    pub(crate) context: Context,
    pub(crate) device: ClDevice,
    /// Built programs by (source, options).
    pub(crate) programs: Mutex<HashMap<(String, String), Arc<Program>>>,
}

impl std::fmt::Debug for ClContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClContext")
            .field("device", &self.inner.device.name().unwrap_or_default())
            .finish()
    }
}

impl PartialEq for ClContext {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl ClContext {
    /// A context on `device`.
    ///
    /// # Errors
    /// [`Error::Driver`] when the platform refuses it.
    pub fn new(device: &ClDevice) -> Result<ClContext> {
        let context = Context::from_device(&device.device)
            .map_err(|e| Error::opencl("context creation", e))?;
        Ok(ClContext {
            inner: Arc::new(ContextInner {
                context,
                device: device.clone(),
                programs: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// A context on the first GPU, else on the first device of any kind:
    /// `pyopencl.create_some_context()` without the prompt.
    ///
    /// # Errors
    /// [`Error::NoDevice`] when there is no OpenCL platform or device.
    pub fn first() -> Result<ClContext> {
        ClContext::new(&ClDevice::first()?)
    }

    /// The context's device.
    pub fn device(&self) -> &ClDevice {
        &self.inner.device
    }
}

/// An in-order command queue on a context's device (`pyopencl.CommandQueue`). Commands run
/// in the order they are queued; reading a buffer back waits for the kernels before it.
/// Cheap to clone; clones share the queue.
#[derive(Clone)]
pub struct ClQueue {
    pub(crate) queue: Arc<CommandQueue>,
    pub(crate) context: ClContext,
}

impl std::fmt::Debug for ClQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClQueue")
            .field("context", &self.context)
            .finish()
    }
}

impl ClQueue {
    /// A queue on the context's device, with profiling on (kernel launches can report their
    /// device time).
    ///
    /// # Errors
    /// [`Error::Driver`] when the platform refuses it.
    pub fn new(context: &ClContext) -> Result<ClQueue> {
        let ctx = &context.inner.context;
        let queue =
            match CommandQueue::create_default_with_properties(ctx, CL_QUEUE_PROFILING_ENABLE, 0) {
                Ok(queue) => queue,
                // OpenCL 1.x platforms only have the older entry point.
                #[allow(deprecated)]
                Err(_) => CommandQueue::create_default(ctx, CL_QUEUE_PROFILING_ENABLE)
                    .map_err(|e| Error::opencl("command queue creation", e))?,
            };
        Ok(ClQueue {
            queue: Arc::new(queue),
            context: context.clone(),
        })
    }

    /// The queue's context.
    pub fn context(&self) -> &ClContext {
        &self.context
    }

    /// Waits until every command queued so far has finished (`queue.finish()`).
    ///
    /// # Errors
    /// [`Error::Driver`].
    pub fn finish(&self) -> Result<()> {
        self.queue
            .finish()
            .map_err(|e| Error::opencl("queue finish", e))
    }
}

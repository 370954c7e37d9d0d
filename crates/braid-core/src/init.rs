/// A start-up hook run by [`init`]; families that re-execute the current binary as a
/// worker (processes, MPI ranks) register one to take over such a child.
///
/// A hook checks the environment it was started with and, if it is meant for it, runs the
/// worker and exits the process; otherwise it returns and `main` goes on.
pub struct StartupHook {
    name: &'static str,
    run: fn(),
}

inventory::collect!(StartupHook);

impl StartupHook {
    /// A hook named `name` (for logs) running `run`.
    pub const fn new(name: &'static str, run: fn()) -> Self {
        StartupHook { name, run }
    }
}

/// Call first thing in `main` of any program that uses braid's process-based families.
///
/// braid starts worker processes by re-executing the current binary (like Python's
/// `multiprocessing` "spawn" start method; no `fork()` of a threaded process). In such a
/// child, `init` turns the process into the worker it was started to be and never returns;
/// in the parent, and in every program that starts no workers, it returns at once.
/// Calling it more than once is harmless.
///
/// ```
/// // The first statement of `main`:
/// braid_core::init();
/// // ... the program proper.
/// ```
pub fn init() {
    for hook in inventory::iter::<StartupHook> {
        tracing::trace!(hook = hook.name, "running start-up hook");
        (hook.run)();
    }
}

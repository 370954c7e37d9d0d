/// Every way a dmap call can fail.
///
/// A task's own failure, an unknown task, arguments that do not decode and a lost worker
/// arrive as [`Error::Core`], carrying braid-core's error unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An error from the task layer: the task failed or panicked, it is not registered,
    /// its arguments do not decode, its worker was lost, the executor was shut down.
    #[error(transparent)]
    Core(#[from] braid_core::Error),
    /// A shared constant of this name was set already; a constant is set once.
    #[error("shared constant `{0}` is set already: a shared constant is set once")]
    ConstantExists(String),
    /// No shared constant of this name was set.
    #[error(
        "no shared constant named `{0}` was set (set it with Dmap::set_const before submitting)"
    )]
    ConstantMissing(String),
    /// The store that holds shared constants failed (a file or Redis error).
    #[error("the shared-constant store failed: {0}")]
    Store(String),
    /// `map_reduce` was given no items, so there is nothing to reduce.
    #[error("map_reduce was given no items: there is no value to reduce")]
    Empty,
    /// A call that only makes sense inside a task running under a [`Dmap`](crate::Dmap)
    /// was made elsewhere.
    #[error("{0} is only available inside a task submitted through a Dmap")]
    NotInTask(&'static str),
    /// The executor could not be built: bad settings in the environment, a pool that
    /// did not start.
    #[error("cannot set up the dmap executor: {0}")]
    Setup(String),
}

/// braid-dmap's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

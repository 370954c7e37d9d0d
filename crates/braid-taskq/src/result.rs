//! Reading results: [`AsyncResult`] for one task, [`GroupResult`] for a group.

use std::marker::PhantomData;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::state::ResultMeta;
use crate::{App, Error, ExceptionInfo, Result, State, TaskFailure, runtime};

/// A task's result, read from the result backend: Celery's `AsyncResult`.
///
/// `R` is the type the result decodes as ([`serde_json::Value`] for tasks sent by name).
pub struct AsyncResult<R = Value> {
    app: App,
    id: String,
    _result: PhantomData<fn() -> R>,
}

impl<R> Clone for AsyncResult<R> {
    fn clone(&self) -> Self {
        AsyncResult {
            app: self.app.clone(),
            id: self.id.clone(),
            _result: PhantomData,
        }
    }
}

impl<R> std::fmt::Debug for AsyncResult<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AsyncResult({})", self.id)
    }
}

/// `None` for a wait without end (`Duration::MAX`).
fn finite(timeout: Duration) -> Option<Duration> {
    (timeout != Duration::MAX).then_some(timeout)
}

impl<R: DeserializeOwned> AsyncResult<R> {
    pub(crate) fn new(app: App, id: String) -> Self {
        AsyncResult {
            app,
            id,
            _result: PhantomData,
        }
    }

    /// The task id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The same result, decoded as another type.
    pub fn typed<T: DeserializeOwned>(self) -> AsyncResult<T> {
        AsyncResult::new(self.app, self.id)
    }

    fn meta(&self) -> Result<Option<ResultMeta>> {
        let app = self.app.clone();
        let id = self.id.clone();
        let stored = runtime::block_on(async move { app.backend().await?.get(&id).await })??;
        stored.map(|bytes| decode_meta(&bytes)).transpose()
    }

    /// Where the task stands; `PENDING` when the backend knows nothing of it.
    ///
    /// # Errors
    /// [`Error::NoBackend`], or a backend that cannot be reached.
    pub fn state(&self) -> Result<State> {
        Ok(self.meta()?.map_or(State::Pending, |m| m.status))
    }

    /// Whether the task has finished (succeeded, failed or was revoked).
    ///
    /// # Errors
    /// As for [`AsyncResult::state`].
    pub fn ready(&self) -> Result<bool> {
        Ok(self.state()?.is_ready())
    }

    /// Whether the task succeeded.
    ///
    /// # Errors
    /// As for [`AsyncResult::state`].
    pub fn successful(&self) -> Result<bool> {
        Ok(self.state()? == State::Success)
    }

    /// Whether the task failed.
    ///
    /// # Errors
    /// As for [`AsyncResult::state`].
    pub fn failed(&self) -> Result<bool> {
        Ok(self.state()? == State::Failure)
    }

    /// The stored result as it is: the value, the exception, or nothing yet.
    ///
    /// # Errors
    /// As for [`AsyncResult::state`].
    pub fn info(&self) -> Result<Option<Value>> {
        Ok(self.meta()?.map(|m| m.result))
    }

    /// The traceback of a failure, when the worker stored one.
    ///
    /// # Errors
    /// As for [`AsyncResult::state`].
    pub fn traceback(&self) -> Result<Option<String>> {
        Ok(self.meta()?.and_then(|m| m.traceback))
    }

    /// Waits up to `timeout` (`Duration::MAX`: for ever) for the task to finish and returns
    /// its value, or its error: [`Error::Task`] with the exception it raised,
    /// [`Error::Revoked`], or [`Error::Timeout`].
    ///
    /// # Errors
    /// As above, or a backend that cannot be reached.
    pub fn get(&self, timeout: Duration) -> Result<R> {
        let app = self.app.clone();
        let id = self.id.clone();
        let wait = finite(timeout);
        let stored = runtime::block_on(async move { app.backend().await?.wait(&id, wait).await })??;
        match stored {
            Some(bytes) => outcome(&self.id, decode_meta(&bytes)?),
            None => Err(Error::Timeout(timeout)),
        }
    }

    /// Removes the stored result.
    ///
    /// # Errors
    /// As for [`AsyncResult::state`].
    pub fn forget(&self) -> Result<()> {
        let app = self.app.clone();
        let id = self.id.clone();
        runtime::block_on(async move { app.backend().await?.forget(vec![id]).await })?
    }

    /// Revokes the task; with `terminate`, a worker running it ends it.
    ///
    /// # Errors
    /// A broker that cannot be reached.
    pub fn revoke(&self, terminate: bool) -> Result<()> {
        self.app.revoke(&[&self.id], terminate)
    }
}

pub(crate) fn decode_meta(bytes: &[u8]) -> Result<ResultMeta> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::Backend(format!("a stored result does not decode: {e}")))
}

/// A finished record as the caller's value or error.
pub(crate) fn outcome<R: DeserializeOwned>(id: &str, meta: ResultMeta) -> Result<R> {
    match meta.status {
        State::Success => serde_json::from_value(meta.result).map_err(|e| {
            Error::Core(braid_core::Error::Decode {
                expected: std::any::type_name::<R>().to_string(),
                message: e.to_string(),
            })
        }),
        State::Revoked => Err(Error::Revoked(id.to_string())),
        _ => {
            let exception = serde_json::from_value::<ExceptionInfo>(meta.result.clone())
                .unwrap_or_else(|_| ExceptionInfo {
                    exc_type: "Exception".into(),
                    exc_message: vec![meta.result],
                    exc_module: None,
                });
            Err(Error::Task(TaskFailure {
                task_id: id.to_string(),
                exception,
                traceback: meta.traceback,
            }))
        }
    }
}

/// The results of a group's members, in the group's order: Celery's `GroupResult`.
#[derive(Debug, Clone)]
pub struct GroupResult {
    id: String,
    results: Vec<AsyncResult<Value>>,
}

impl GroupResult {
    pub(crate) fn new(id: String, results: Vec<AsyncResult<Value>>) -> Self {
        GroupResult { id, results }
    }

    /// The group id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The members' results.
    pub fn results(&self) -> &[AsyncResult<Value>] {
        &self.results
    }

    /// Waits for every member, up to `timeout` in all, and returns their values in order,
    /// decoded as `T`; the first failure is returned as the error (Celery's `get()`).
    ///
    /// # Errors
    /// A member's failure, [`Error::Timeout`], or a backend that cannot be reached.
    pub fn get<T: DeserializeOwned>(&self, timeout: Duration) -> Result<Vec<T>> {
        let deadline = Instant::now().checked_add(timeout);
        self.results
            .iter()
            .map(|r| {
                let left = deadline.map_or(Duration::MAX, |d| {
                    d.saturating_duration_since(Instant::now())
                });
                r.clone().typed::<T>().get(left).map_err(|e| match e {
                    Error::Timeout(_) => Error::Timeout(timeout),
                    other => other,
                })
            })
            .collect()
    }

    /// How many members have finished.
    ///
    /// # Errors
    /// A backend that cannot be reached.
    pub fn completed_count(&self) -> Result<usize> {
        let mut done = 0;
        for r in &self.results {
            if r.ready()? {
                done += 1;
            }
        }
        Ok(done)
    }
}

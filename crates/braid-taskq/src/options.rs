//! Options of a task (given once, at registration) and of one call (`apply_async`).

use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};

use crate::{Error, Result, Serializer, Signature};

/// How a task is run, retried and routed: Celery's task attributes.
///
/// Give them to [`App::task_options`](crate::App::task_options) under the task's name;
/// a task without options gets [`TaskOptions::default`].
///
/// ```
/// use std::time::Duration;
/// use braid_taskq::{RateLimit, TaskOptions};
///
/// let options = TaskOptions {
///     max_retries: Some(5),
///     retry_backoff: Some(Duration::from_secs(1)),
///     autoretry_for: vec!["std::io::Error".into()],
///     rate_limit: Some("10/s".parse::<RateLimit>().unwrap()),
///     ..TaskOptions::default()
/// };
/// assert!(options.acks_late);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TaskOptions {
    /// How many times the task may be retried; `None` retries for ever. Celery's default: 3.
    pub max_retries: Option<u32>,
    /// The wait before a retry when no backoff is set. Celery's default: 180 s.
    pub default_retry_delay: Duration,
    /// Exponential backoff for automatic retries: the first retry waits this long, each
    /// next one twice as long (Celery's `retry_backoff`).
    pub retry_backoff: Option<Duration>,
    /// The longest backoff wait (Celery's `retry_backoff_max`, 600 s).
    pub retry_backoff_max: Duration,
    /// Wait a random time between zero and the backoff (Celery's `retry_jitter`).
    pub retry_jitter: bool,
    /// Error types that make the task retry by itself (Celery's `autoretry_for`): a full
    /// Rust path (`std::io::Error`), a type's short name (`ParseIntError`), or `*` for any.
    pub autoretry_for: Vec<String>,
    /// A hard limit: the task is ended and fails with `TimeLimitExceeded`.
    pub time_limit: Option<Duration>,
    /// A soft limit: [`TaskContext::check_soft_time_limit`](crate::TaskContext::check_soft_time_limit)
    /// returns `SoftTimeLimitExceeded` from then on, for the task to stop cleanly.
    pub soft_time_limit: Option<Duration>,
    /// At most this many starts per time unit on each worker.
    pub rate_limit: Option<RateLimit>,
    /// Acknowledge the message after the task ran, so work survives a worker crash
    /// (default: true, unlike Celery).
    pub acks_late: bool,
    /// Do not store the task's result.
    pub ignore_result: bool,
    /// Store `STARTED` when a worker starts the task.
    pub track_started: bool,
    /// The queue calls go to when they name none.
    pub queue: Option<String>,
    /// The priority calls get when they name none (0-9; lower runs first on Redis).
    pub priority: Option<u8>,
}

impl Default for TaskOptions {
    fn default() -> Self {
        TaskOptions {
            max_retries: Some(3),
            default_retry_delay: Duration::from_secs(180),
            retry_backoff: None,
            retry_backoff_max: Duration::from_secs(600),
            retry_jitter: true,
            autoretry_for: Vec::new(),
            time_limit: None,
            soft_time_limit: None,
            rate_limit: None,
            acks_late: true,
            ignore_result: false,
            track_started: false,
            queue: None,
            priority: None,
        }
    }
}

impl TaskOptions {
    /// Whether an error of `error_type` (a Rust type path, or a Celery exception name)
    /// makes the task retry by itself.
    pub fn retries_on(&self, error_type: &str) -> bool {
        let short = error_type.rsplit("::").next().unwrap_or(error_type);
        let short = short.rsplit('.').next().unwrap_or(short);
        self.autoretry_for.iter().any(|wanted| {
            wanted == "*"
                || wanted == error_type
                || wanted == short
                || error_type.ends_with(&format!("::{wanted}"))
                || same_type_path(wanted, error_type)
        })
    }

    /// The wait before retry number `retries + 1` (Celery's
    /// `get_exponential_backoff_interval`), with `random` in `[0, 1)` for the jitter.
    pub fn retry_delay(&self, retries: u32, random: f64) -> Duration {
        let Some(factor) = self.retry_backoff else {
            return self.default_retry_delay;
        };
        let scale = 2f64.powi(retries.min(62) as i32);
        let countdown = (factor.as_secs_f64() * scale).min(self.retry_backoff_max.as_secs_f64());
        let countdown = if self.retry_jitter {
            (countdown * random.clamp(0.0, 1.0)).floor()
        } else {
            countdown
        };
        Duration::from_secs_f64(countdown.max(0.0))
    }
}

/// `std::io::Error` names the type `std::io::error::Error`: compare first and last segments.
fn same_type_path(wanted: &str, actual: &str) -> bool {
    let w: Vec<&str> = wanted.split("::").collect();
    let a: Vec<&str> = actual.split("::").collect();
    w.len() >= 2
        && a.len() >= 2
        && w.last() == a.last()
        && (w[0] == a[0] || (w[0] == "std" && matches!(a[0], "core" | "alloc")))
        && w[..w.len() - 1]
            .iter()
            .all(|segment| a.contains(segment) || *segment == "std")
}

/// A rate limit such as `"10/s"`, `"100/m"` or `"1000/h"` (a bare number is per second).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// How many starts.
    pub count: u32,
    /// In how long.
    pub per: Duration,
}

impl RateLimit {
    /// The least time between two starts.
    pub fn interval(&self) -> Duration {
        if self.count == 0 {
            Duration::ZERO
        } else {
            self.per / self.count
        }
    }
}

impl std::str::FromStr for RateLimit {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::InvalidOption(format!(
                "a rate limit looks like 10/s, 100/m or 1000/h, not {s:?}"
            ))
        };
        let (count, unit) = s.trim().split_once('/').unwrap_or((s.trim(), "s"));
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        let per = match unit.trim() {
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return Err(bad()),
        };
        Ok(RateLimit { count, per })
    }
}

/// When a call's result stops being wanted: the task is revoked if it has not started.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Expires {
    /// This long after sending.
    In(Duration),
    /// At this time.
    At(SystemTime),
}

/// The options of one call, Celery's `apply_async` keywords; build it with its methods.
///
/// ```
/// use std::time::Duration;
/// use braid_taskq::CallOptions;
///
/// let options = CallOptions::new()
///     .countdown(Duration::from_secs(10))
///     .expires_in(Duration::from_secs(60))
///     .queue("reports")
///     .priority(3);
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallOptions {
    pub(crate) kwargs: Map<String, Value>,
    pub(crate) countdown: Option<Duration>,
    pub(crate) eta: Option<SystemTime>,
    pub(crate) expires: Option<Expires>,
    pub(crate) queue: Option<String>,
    pub(crate) priority: Option<u8>,
    pub(crate) task_id: Option<String>,
    pub(crate) headers: Map<String, Value>,
    pub(crate) time_limit: Option<Duration>,
    pub(crate) soft_time_limit: Option<Duration>,
    pub(crate) ignore_result: Option<bool>,
    pub(crate) serializer: Option<Serializer>,
    pub(crate) link: Vec<Signature>,
    pub(crate) link_error: Vec<Signature>,
}

impl CallOptions {
    /// No options: run as soon as possible on the task's queue.
    pub fn new() -> Self {
        CallOptions::default()
    }

    /// A keyword argument, matched to the task's parameter of that name.
    pub fn kwarg(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.kwargs.insert(name.to_string(), value.into());
        self
    }

    /// Run no sooner than this long from now.
    pub fn countdown(mut self, delay: Duration) -> Self {
        self.countdown = Some(delay);
        self
    }

    /// Run no sooner than `at`.
    pub fn eta(mut self, at: SystemTime) -> Self {
        self.eta = Some(at);
        self
    }

    /// Revoke the call if it has not started this long from now.
    pub fn expires_in(mut self, after: Duration) -> Self {
        self.expires = Some(Expires::In(after));
        self
    }

    /// Revoke the call if it has not started by `at`.
    pub fn expires_at(mut self, at: SystemTime) -> Self {
        self.expires = Some(Expires::At(at));
        self
    }

    /// The queue to send to.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// The priority, 0-9 (lower runs first on Redis).
    pub fn priority(mut self, priority: u8) -> Self {
        self.priority = Some(priority.min(9));
        self
    }

    /// The task id (default: a new UUID).
    pub fn task_id(mut self, id: impl Into<String>) -> Self {
        self.task_id = Some(id.into());
        self
    }

    /// An extra message header, which the worker passes to the task's context.
    pub fn header(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.headers.insert(name.to_string(), value.into());
        self
    }

    /// A hard time limit for this call.
    pub fn time_limit(mut self, limit: Duration) -> Self {
        self.time_limit = Some(limit);
        self
    }

    /// A soft time limit for this call.
    pub fn soft_time_limit(mut self, limit: Duration) -> Self {
        self.soft_time_limit = Some(limit);
        self
    }

    /// Whether to store the result.
    pub fn ignore_result(mut self, ignore: bool) -> Self {
        self.ignore_result = Some(ignore);
        self
    }

    /// The body serializer (JSON by default).
    pub fn serializer(mut self, serializer: Serializer) -> Self {
        self.serializer = Some(serializer);
        self
    }

    /// A task to apply with the result when this one succeeds (Celery's `link`).
    pub fn link(mut self, callback: Signature) -> Self {
        self.link.push(callback);
        self
    }

    /// A task to apply with this task's id when it fails (Celery's `link_error`).
    pub fn link_error(mut self, errback: Signature) -> Self {
        self.link_error.push(errback);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_parse() {
        let r: RateLimit = "10/s".parse().unwrap();
        assert_eq!(r.interval(), Duration::from_millis(100));
        let r: RateLimit = "120/m".parse().unwrap();
        assert_eq!(r.interval(), Duration::from_millis(500));
        let r: RateLimit = "5".parse().unwrap();
        assert_eq!(r.per, Duration::from_secs(1));
        assert!("x/s".parse::<RateLimit>().is_err());
        assert!("1/d".parse::<RateLimit>().is_err());
    }

    #[test]
    fn autoretry_matches_paths_and_short_names() {
        let options = TaskOptions {
            autoretry_for: vec!["std::io::Error".into(), "ParseIntError".into()],
            ..TaskOptions::default()
        };
        assert!(options.retries_on("std::io::error::Error"));
        assert!(options.retries_on("core::num::error::ParseIntError"));
        assert!(!options.retries_on("my::Error"));
        assert!(!options.retries_on("alloc::string::String"));
        let any = TaskOptions {
            autoretry_for: vec!["*".into()],
            ..TaskOptions::default()
        };
        assert!(any.retries_on("whatever"));
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let options = TaskOptions {
            retry_backoff: Some(Duration::from_secs(1)),
            retry_backoff_max: Duration::from_secs(5),
            retry_jitter: false,
            ..TaskOptions::default()
        };
        let delays: Vec<u64> = (0..5)
            .map(|r| options.retry_delay(r, 0.5).as_secs())
            .collect();
        assert_eq!(delays, [1, 2, 4, 5, 5]);
        let jittered = TaskOptions {
            retry_jitter: true,
            ..options.clone()
        };
        assert_eq!(jittered.retry_delay(2, 0.5), Duration::from_secs(2));
        assert_eq!(
            TaskOptions::default().retry_delay(0, 0.3),
            Duration::from_secs(180)
        );
    }
}

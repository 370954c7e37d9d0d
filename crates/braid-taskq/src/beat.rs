//! Periodic tasks: Celery beat. A [`Beat`] sends each [`Entry`] of a schedule when it is
//! due, by interval ([`Schedule::every`]) or crontab ([`Schedule::crontab`]), remembers
//! when each last ran in a file that survives restarts, and holds a lock in the broker so
//! that two beats started by mistake never both send a run.
//!
//! | Celery | braid-taskq |
//! |---|---|
//! | `app.conf.beat_schedule = {name: {task, schedule, args, kwargs, options}}` | [`Entry`], or a TOML/JSON file read by [`load_entries`] |
//! | `schedule(run_every=10)`, `crontab(minute="*/5")` | [`Schedule::every`], [`Schedule::crontab`] |
//! | `celery beat -s celerybeat-schedule` | [`Beat::from_file`] and [`Beat::run`] (and `braid beat`) |
//!
//! Crontab times are UTC (Celery's default with `enable_utc`). As in Celery, a crontab
//! that restricts both the day of the month and the day of the week needs both to match.
//!
//! Runs missed while no beat was running are sent once when a beat comes back (not once
//! per missed slot). A standby beat follows the schedule without sending; when it takes
//! the lock over, it goes on from there: a run that fell due while a dead beat still held
//! the lock (at most the lock's time to live) is skipped, never sent twice. A beat that
//! stops cleanly gives the lock up at once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Datelike, TimeZone, Timelike, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{App, CallOptions, runtime};

/// What can go wrong with a schedule.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BeatError {
    /// A crontab expression or field that cannot be parsed.
    #[error("bad crontab {expr:?}: {reason}")]
    Crontab {
        /// The expression as given.
        expr: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A schedule file that cannot be read or understood.
    #[error("schedule {path}: {reason}")]
    Config {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The store of last run times cannot be read or written.
    #[error("schedule store {path}: {reason}")]
    Store {
        /// The store file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The broker refused an operation (taking the lock, sending a task).
    #[error(transparent)]
    Queue(#[from] crate::Error),
}

/// One crontab field: the allowed values as bits.
fn parse_field(
    expr: &str,
    text: &str,
    min: u32,
    max: u32,
    names: &[&str],
) -> Result<u64, BeatError> {
    let bad = |reason: String| BeatError::Crontab {
        expr: expr.to_string(),
        reason,
    };
    let value = |s: &str| -> Result<u32, BeatError> {
        let lower = s.to_ascii_lowercase();
        if let Some(i) = names.iter().position(|n| *n == lower) {
            return Ok(min + i as u32);
        }
        let n: u32 = s
            .parse()
            .map_err(|_| bad(format!("{s:?} is not a number in {min}-{max}")))?;
        // Day of the week: 7 is Sunday too.
        let n = if max == 6 && n == 7 { 0 } else { n };
        if n < min || n > max {
            return Err(bad(format!("{n} is outside {min}-{max}")));
        }
        Ok(n)
    };
    let mut bits = 0u64;
    for part in text.split(',') {
        let part = part.trim();
        if part.is_empty() {
            return Err(bad(format!("an empty item in {text:?}")));
        }
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => {
                let step: u32 = step
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| bad(format!("step {step:?} must be a positive number")))?;
                (range, step)
            }
            None => (part, 1),
        };
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (value(a)?, value(b)?);
            if a > b {
                return Err(bad(format!("range {range:?} runs backwards")));
            }
            (a, b)
        } else {
            let a = value(range)?;
            // `5/15` means from 5 to the end, every 15.
            (a, if part.contains('/') { max } else { a })
        };
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok(bits)
}

/// A crontab: the minutes, hours, days of the month, months and days of the week at which
/// a task runs (UTC). Parse one from the five fields `"minute hour day-of-month month
/// day-of-week"`: `*`, numbers, ranges `a-b`, steps `*/n` and `a-b/n`, lists `a,b`, and
/// names (`jan`-`dec`, `sun`-`sat`; Sunday is 0 or 7).
///
/// ```
/// use braid_taskq::Crontab;
///
/// let every_quarter_hour: Crontab = "*/15 * * * *".parse().unwrap();
/// let weekdays_at_nine: Crontab = "0 9 * * mon-fri".parse().unwrap();
/// assert!("61 * * * *".parse::<Crontab>().is_err());
/// # let _ = (every_quarter_hour, weekdays_at_nine);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crontab {
    minute: u64,
    hour: u64,
    day_of_month: u64,
    month: u64,
    day_of_week: u64,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

impl FromStr for Crontab {
    type Err = BeatError;

    fn from_str(expr: &str) -> Result<Self, BeatError> {
        let fields: Vec<&str> = expr.split_whitespace().collect();
        let [minute, hour, dom, month, dow] = fields[..] else {
            return Err(BeatError::Crontab {
                expr: expr.to_string(),
                reason: format!(
                    "expected 5 fields (minute hour day-of-month month day-of-week), got {}",
                    fields.len()
                ),
            });
        };
        Crontab::from_fields(expr, minute, hour, dom, month, dow)
    }
}

impl Crontab {
    /// A crontab from Celery's keyword fields: `crontab(minute, hour, day_of_week,
    /// day_of_month, month_of_year)`; each is a field as in a crontab line.
    ///
    /// # Errors
    /// [`BeatError::Crontab`] for a field that does not parse.
    pub fn new(
        minute: &str,
        hour: &str,
        day_of_week: &str,
        day_of_month: &str,
        month_of_year: &str,
    ) -> Result<Crontab, BeatError> {
        let expr = format!("{minute} {hour} {day_of_month} {month_of_year} {day_of_week}");
        Crontab::from_fields(
            &expr,
            minute,
            hour,
            day_of_month,
            month_of_year,
            day_of_week,
        )
    }

    fn from_fields(
        expr: &str,
        minute: &str,
        hour: &str,
        dom: &str,
        month: &str,
        dow: &str,
    ) -> Result<Crontab, BeatError> {
        Ok(Crontab {
            minute: parse_field(expr, minute, 0, 59, &[])?,
            hour: parse_field(expr, hour, 0, 23, &[])?,
            day_of_month: parse_field(expr, dom, 1, 31, &[])?,
            month: parse_field(expr, month, 1, 12, &MONTHS)?,
            day_of_week: parse_field(expr, dow, 0, 6, &DAYS)?,
        })
    }

    /// Whether the crontab fires at the minute of `t`.
    pub fn matches(&self, t: DateTime<Utc>) -> bool {
        self.month & (1 << t.month()) != 0
            && self.day_matches(t)
            && self.hour & (1 << t.hour()) != 0
            && self.minute & (1 << t.minute()) != 0
    }

    fn day_matches(&self, t: DateTime<Utc>) -> bool {
        self.day_of_month & (1 << t.day()) != 0
            && self.day_of_week & (1 << t.weekday().num_days_from_sunday()) != 0
    }

    /// The first minute strictly after `t` at which it fires; `None` when it never does
    /// within five years (such as the 31st of February).
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let start = Utc
            .with_ymd_and_hms(t.year(), t.month(), t.day(), t.hour(), t.minute(), 0)
            .single()?;
        let mut t = start + chrono::Duration::minutes(1);
        let limit = t.year() + 5;
        while t.year() <= limit {
            if self.month & (1 << t.month()) == 0 {
                let (y, m) = if t.month() == 12 {
                    (t.year() + 1, 1)
                } else {
                    (t.year(), t.month() + 1)
                };
                t = Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).single()?;
                continue;
            }
            if !self.day_matches(t) {
                t = Utc
                    .with_ymd_and_hms(t.year(), t.month(), t.day(), 0, 0, 0)
                    .single()?
                    + chrono::Duration::days(1);
                continue;
            }
            if self.hour & (1 << t.hour()) == 0 {
                t = Utc
                    .with_ymd_and_hms(t.year(), t.month(), t.day(), t.hour(), 0, 0)
                    .single()?
                    + chrono::Duration::hours(1);
                continue;
            }
            if self.minute & (1 << t.minute()) == 0 {
                t += chrono::Duration::minutes(1);
                continue;
            }
            return Some(t);
        }
        None
    }
}

/// When an entry runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// Every so often (Celery's `schedule(run_every=...)`, or a number of seconds).
    Every(Duration),
    /// At the minutes a crontab names.
    Crontab(Crontab),
}

impl Schedule {
    /// Every `interval`.
    pub fn every(interval: Duration) -> Schedule {
        Schedule::Every(interval)
    }

    /// At the minutes of a crontab line (`"*/5 * * * *"`).
    ///
    /// # Errors
    /// [`BeatError::Crontab`] for an expression that does not parse.
    pub fn crontab(expr: &str) -> Result<Schedule, BeatError> {
        Ok(Schedule::Crontab(expr.parse()?))
    }

    /// When it is next due after a run (or first sight) at `last`.
    pub fn due_after(&self, last: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Every(d) => {
                let d = chrono::Duration::from_std(*d).ok()?;
                last.checked_add_signed(d)
            }
            Schedule::Crontab(c) => c.next_after(last),
        }
    }
}

/// One periodic task: Celery's `beat_schedule` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The entry's name (the key of the last-run record).
    pub name: String,
    /// The task to send.
    pub task: String,
    /// Its positional arguments.
    pub args: Vec<Value>,
    /// Its keyword arguments.
    pub kwargs: Map<String, Value>,
    /// The queue to send to (the app's default when `None`).
    pub queue: Option<String>,
    /// The priority to send with.
    pub priority: Option<u8>,
    /// How long after sending a run that has not started is revoked.
    pub expires: Option<Duration>,
    /// When it runs.
    pub schedule: Schedule,
}

impl Entry {
    /// An entry sending `task` with no arguments on `schedule`.
    pub fn new(name: impl Into<String>, task: impl Into<String>, schedule: Schedule) -> Entry {
        Entry {
            name: name.into(),
            task: task.into(),
            args: Vec::new(),
            kwargs: Map::new(),
            queue: None,
            priority: None,
            expires: None,
            schedule,
        }
    }

    /// With these positional arguments.
    pub fn args(mut self, args: Vec<Value>) -> Entry {
        self.args = args;
        self
    }

    /// With this keyword argument.
    pub fn kwarg(mut self, name: &str, value: impl Into<Value>) -> Entry {
        self.kwargs.insert(name.to_string(), value.into());
        self
    }

    /// Sent to `queue`.
    pub fn queue(mut self, queue: impl Into<String>) -> Entry {
        self.queue = Some(queue.into());
        self
    }

    fn call_options(&self) -> CallOptions {
        let mut options = CallOptions::new();
        for (k, v) in &self.kwargs {
            options = options.kwarg(k, v.clone());
        }
        if let Some(q) = &self.queue {
            options = options.queue(q);
        }
        if let Some(p) = self.priority {
            options = options.priority(p);
        }
        if let Some(e) = self.expires {
            options = options.expires_in(e);
        }
        options
    }
}

/// An entry as a schedule file writes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    name: Option<String>,
    task: String,
    #[serde(default)]
    args: Vec<Value>,
    #[serde(default)]
    kwargs: Map<String, Value>,
    #[serde(default)]
    options: RawOptions,
    schedule: RawSchedule,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOptions {
    queue: Option<String>,
    priority: Option<u8>,
    expires: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawSchedule {
    Seconds(f64),
    Crontab(String),
    Every { every: f64 },
    CrontabLine { crontab: String },
    CrontabFields { crontab: RawCrontab },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCrontab {
    #[serde(default = "star")]
    minute: String,
    #[serde(default = "star")]
    hour: String,
    #[serde(default = "star")]
    day_of_week: String,
    #[serde(default = "star")]
    day_of_month: String,
    #[serde(default = "star")]
    month_of_year: String,
}

fn star() -> String {
    "*".into()
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawFile {
    List {
        entries: Vec<RawEntry>,
    },
    Named {
        beat_schedule: HashMap<String, RawEntry>,
    },
}

fn seconds(s: f64, what: &str) -> Result<Duration, String> {
    if s.is_finite() && s > 0.0 {
        Ok(Duration::from_secs_f64(s))
    } else {
        Err(format!(
            "{what} must be a positive number of seconds, not {s}"
        ))
    }
}

fn entry_from_raw(name: String, raw: RawEntry) -> Result<Entry, String> {
    let schedule = match raw.schedule {
        RawSchedule::Seconds(s) | RawSchedule::Every { every: s } => {
            Schedule::Every(seconds(s, "an interval")?)
        }
        RawSchedule::Crontab(line) | RawSchedule::CrontabLine { crontab: line } => {
            Schedule::crontab(&line).map_err(|e| e.to_string())?
        }
        RawSchedule::CrontabFields { crontab: c } => Schedule::Crontab(
            Crontab::new(
                &c.minute,
                &c.hour,
                &c.day_of_week,
                &c.day_of_month,
                &c.month_of_year,
            )
            .map_err(|e| e.to_string())?,
        ),
    };
    let expires = raw
        .options
        .expires
        .map(|e| seconds(e, "expires"))
        .transpose()?;
    Ok(Entry {
        name,
        task: raw.task,
        args: raw.args,
        kwargs: raw.kwargs,
        queue: raw.options.queue,
        priority: raw.options.priority,
        expires,
        schedule,
    })
}

/// Parses schedule entries from text: TOML (`[[entries]]` tables) or JSON
/// (`{"entries": [...]}`), or Celery's layout `beat_schedule = {NAME = {...}}`. Each entry
/// has `name`, `task`, `args`, `kwargs`, `options` (`queue`, `priority`, `expires`) and
/// `schedule`: seconds (`10`), a crontab line (`"*/5 * * * *"`), `{every = 10}`,
/// `{crontab = "0 9 * * mon-fri"}` or `{crontab = {minute = "0", hour = "9"}}`.
///
/// ```
/// let toml = r#"
/// [[entries]]
/// name = "add-every-10s"
/// task = "tasks.add"
/// args = [2, 3]
/// schedule = 10
///
/// [[entries]]
/// name = "report"
/// task = "tasks.noop"
/// options = { queue = "reports" }
/// schedule = { crontab = "0 9 * * mon-fri" }
/// "#;
/// let entries = braid_taskq::parse_entries(toml, true).unwrap();
/// assert_eq!(entries.len(), 2);
/// ```
///
/// # Errors
/// [`BeatError::Config`] for text that does not parse, an unknown field, a bad schedule or
/// two entries of one name.
pub fn parse_entries(text: &str, toml: bool) -> Result<Vec<Entry>, BeatError> {
    let bad = |reason: String| BeatError::Config {
        path: if toml { "(toml)" } else { "(json)" }.into(),
        reason,
    };
    let file: RawFile = if toml {
        toml::from_str(text).map_err(|e| bad(e.to_string()))?
    } else {
        serde_json::from_str(text).map_err(|e| bad(e.to_string()))?
    };
    let named: Vec<(String, RawEntry)> = match file {
        RawFile::List { entries } => entries
            .into_iter()
            .enumerate()
            .map(|(i, e)| {
                let name = e.name.clone().unwrap_or_else(|| format!("entry-{i}"));
                (name, e)
            })
            .collect(),
        RawFile::Named { beat_schedule } => {
            let mut v: Vec<_> = beat_schedule.into_iter().collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        }
    };
    let mut out: Vec<Entry> = Vec::with_capacity(named.len());
    for (name, raw) in named {
        if out.iter().any(|e| e.name == name) {
            return Err(bad(format!("two entries are named {name:?}")));
        }
        out.push(entry_from_raw(name.clone(), raw).map_err(|e| bad(format!("{name}: {e}")))?);
    }
    Ok(out)
}

/// Reads schedule entries from a `.toml` or `.json` file (see [`parse_entries`]).
///
/// # Errors
/// [`BeatError::Config`] naming the file.
pub fn load_entries(path: &Path) -> Result<Vec<Entry>, BeatError> {
    let text = std::fs::read_to_string(path).map_err(|e| BeatError::Config {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    let toml = path.extension().and_then(|e| e.to_str()) != Some("json");
    parse_entries(&text, toml).map_err(|e| match e {
        BeatError::Config { reason, .. } => BeatError::Config {
            path: path.display().to_string(),
            reason,
        },
        other => other,
    })
}

/// What the store remembers of one entry.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// When it last ran (or was first seen), in seconds since the epoch.
    pub last_run: f64,
    /// How many times this store has sent it.
    pub total_run_count: u64,
}

/// The last run time of each entry, in a JSON file written atomically after each change:
/// what Celery keeps in `celerybeat-schedule`.
#[derive(Debug, Clone)]
struct Store {
    path: PathBuf,
    runs: HashMap<String, RunRecord>,
}

impl Store {
    fn load(path: PathBuf) -> Result<Store, BeatError> {
        let runs = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| BeatError::Store {
                path: path.display().to_string(),
                reason: format!("not a schedule store: {e}"),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
            Err(e) => {
                return Err(BeatError::Store {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                });
            }
        };
        Ok(Store { path, runs })
    }

    fn save(&self) -> Result<(), BeatError> {
        let bad = |e: std::io::Error| BeatError::Store {
            path: self.path.display().to_string(),
            reason: e.to_string(),
        };
        let text = serde_json::to_vec_pretty(&self.runs).map_err(|e| BeatError::Store {
            path: self.path.display().to_string(),
            reason: e.to_string(),
        })?;
        let tmp = self.path.with_extension(format!(
            "tmp-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::write(&tmp, text).map_err(bad)?;
        std::fs::rename(&tmp, &self.path).map_err(|e| {
            if let Err(cleanup) = std::fs::remove_file(&tmp) {
                tracing::warn!(error = %cleanup, "could not remove a temporary store file");
            }
            bad(e)
        })
    }
}

/// The store file of a schedule file: `NAME.state.json` beside it.
pub fn store_path_for(schedule: &Path) -> PathBuf {
    let mut name = schedule
        .file_stem()
        .map(|s| s.to_os_string())
        .unwrap_or_else(|| "schedule".into());
    name.push(".state.json");
    schedule.with_file_name(name)
}

/// What one [`Beat::tick_at`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tick {
    /// Whether this beat holds the lock (and so sends runs).
    pub leader: bool,
    /// The runs it sent: entry name and task id.
    pub sent: Vec<(String, String)>,
    /// When the next entry is due.
    pub next_due: Option<SystemTime>,
}

/// The lock every beat of a broker takes.
pub const BEAT_LOCK: &str = "beat";

/// Celery beat: sends each entry of a schedule when it is due.
///
/// Only the beat holding the broker lock sends; others stand by, follow the schedule, and
/// take over when the holder's lock runs out (it died) or is given up (it stopped).
///
/// ```no_run
/// use std::time::Duration;
/// use braid_taskq::{App, Beat, Entry, Schedule};
///
/// let app = App::new("redis://127.0.0.1:6379/0", None).unwrap();
/// let entries = vec![
///     Entry::new("add", "tasks.add", Schedule::every(Duration::from_secs(10)))
///         .args(vec![2.into(), 3.into()]),
///     Entry::new("nightly", "tasks.noop", Schedule::crontab("0 3 * * *").unwrap()),
/// ];
/// let mut beat = Beat::new(&app, entries, "beat-state.json").unwrap();
/// let stop = std::sync::atomic::AtomicBool::new(false);
/// beat.run(&stop).unwrap();
/// ```
#[derive(Debug)]
pub struct Beat {
    app: App,
    entries: Vec<Entry>,
    store: Store,
    /// When each entry is next due, as this beat follows the schedule.
    due: HashMap<String, Option<DateTime<Utc>>>,
    owner: String,
    lock_name: String,
    lock_ttl: Duration,
    leader: bool,
}

fn to_utc(t: SystemTime) -> DateTime<Utc> {
    DateTime::<Utc>::from(t)
}

fn from_epoch(s: f64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros((s * 1e6) as i64).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

impl Beat {
    /// A beat sending `entries` on `app`'s broker, remembering last runs in the JSON file
    /// `store` (created when missing).
    ///
    /// # Errors
    /// [`BeatError::Store`] for a store that cannot be read; [`BeatError::Config`] for two
    /// entries of one name.
    pub fn new(
        app: &App,
        entries: Vec<Entry>,
        store: impl Into<PathBuf>,
    ) -> Result<Beat, BeatError> {
        let store = Store::load(store.into())?;
        for (i, e) in entries.iter().enumerate() {
            if entries[..i].iter().any(|o| o.name == e.name) {
                return Err(BeatError::Config {
                    path: store.path.display().to_string(),
                    reason: format!("two entries are named {:?}", e.name),
                });
            }
        }
        Ok(Beat {
            app: app.clone(),
            entries,
            store,
            due: HashMap::new(),
            owner: format!("{}@{}", uuid::Uuid::new_v4().simple(), std::process::id()),
            lock_name: BEAT_LOCK.into(),
            lock_ttl: Duration::from_secs(15),
            leader: false,
        })
    }

    /// A beat for the entries of a schedule file, with its store beside it
    /// ([`store_path_for`]).
    ///
    /// # Errors
    /// As for [`load_entries`] and [`Beat::new`].
    pub fn from_file(app: &App, schedule: &Path) -> Result<Beat, BeatError> {
        let entries = load_entries(schedule)?;
        Beat::new(app, entries, store_path_for(schedule))
    }

    /// How long the lock lasts without renewal (15 s by default): how soon a standby beat
    /// takes over from one that died. It is renewed at every tick (at least once a second).
    pub fn lock_ttl(mut self, ttl: Duration) -> Beat {
        self.lock_ttl = ttl.max(Duration::from_millis(10));
        self
    }

    /// The lock's name (`beat` by default): beats sharing a name exclude each other.
    pub fn lock_name(mut self, name: impl Into<String>) -> Beat {
        self.lock_name = name.into();
        self
    }

    /// The entries.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Whether this beat held the lock at its last tick.
    pub fn is_leader(&self) -> bool {
        self.leader
    }

    /// What the store remembers of the entry `name`.
    pub fn last_run(&self, name: &str) -> Option<RunRecord> {
        self.store.runs.get(name).copied()
    }

    fn take_lock(&self, ttl: Duration) -> Result<bool, BeatError> {
        let app = self.app.clone();
        let (name, owner) = (self.lock_name.clone(), self.owner.clone());
        Ok(runtime::block_on(async move {
            app.broker().await?.lock(&name, &owner, ttl).await
        })??)
    }

    /// One step at time `now`: takes or renews the lock, and (holding it) sends every
    /// entry due by `now`. Tests drive it with their own clock; [`Beat::run`] with the
    /// system's.
    ///
    /// # Errors
    /// The broker could not be reached (the lock is then not held), a task could not be
    /// sent (it is sent at the next tick), or the store could not be written.
    pub fn tick_at(&mut self, now: SystemTime) -> Result<Tick, BeatError> {
        let now = to_utc(now);
        let held = match self.take_lock(self.lock_ttl) {
            Ok(held) => held,
            Err(e) => {
                self.leader = false;
                return Err(e);
            }
        };
        if held && !self.leader {
            tracing::info!(owner = %self.owner, "beat: holding the lock; sending due tasks");
            // Another beat on this machine may have written newer runs.
            // The runs in memory stay right for this beat; a store gone bad is only logged
            // here, and the next save (which fails the tick if it cannot write) replaces it.
            match Store::load(self.store.path.clone()) {
                Ok(fresh) => {
                    for (name, record) in fresh.runs {
                        let mine = self.store.runs.entry(name).or_insert(record);
                        if record.last_run > mine.last_run {
                            *mine = record;
                        }
                    }
                }
                Err(e) => tracing::warn!(
                    error = %e,
                    "beat: could not re-read the store on taking the lock; going on with the runs in memory"
                ),
            }
            for (name, record) in &self.store.runs {
                if let Some(entry) = self.entries.iter().find(|e| &e.name == name) {
                    let next = entry.schedule.due_after(from_epoch(record.last_run));
                    let current = self.due.get(name).copied().flatten();
                    // Never earlier than what this beat followed while standing by.
                    let next = match (current, next) {
                        (Some(c), Some(n)) => Some(c.max(n)),
                        (c, n) => n.or(c),
                    };
                    self.due.insert(name.clone(), next);
                }
            }
        } else if !held && self.leader {
            tracing::warn!(owner = %self.owner, "beat: lost the lock; standing by");
        }
        self.leader = held;
        let mut tick = Tick {
            leader: held,
            ..Tick::default()
        };
        let mut changed = false;
        for entry in &self.entries {
            let due = match self.due.get(&entry.name) {
                Some(due) => *due,
                None => {
                    // First sight: from the store, else from now (Celery's default_now).
                    let last = match self.store.runs.get(&entry.name) {
                        Some(r) => from_epoch(r.last_run),
                        None => {
                            if held {
                                self.store.runs.insert(
                                    entry.name.clone(),
                                    RunRecord {
                                        last_run: crate::clock::to_epoch(now),
                                        total_run_count: 0,
                                    },
                                );
                                changed = true;
                            }
                            now
                        }
                    };
                    let due = entry.schedule.due_after(last);
                    self.due.insert(entry.name.clone(), due);
                    due
                }
            };
            let Some(due) = due else {
                continue;
            };
            if due > now {
                continue;
            }
            let next = entry.schedule.due_after(now);
            if !held {
                // Standing by: follow the schedule without sending.
                self.due.insert(entry.name.clone(), next);
                continue;
            }
            // Record first, then send: a crash in between loses this run, never doubles it.
            let previous = self.store.runs.get(&entry.name).copied();
            let record = RunRecord {
                last_run: crate::clock::to_epoch(now),
                total_run_count: previous.map_or(0, |r| r.total_run_count) + 1,
            };
            self.store.runs.insert(entry.name.clone(), record);
            self.store.save()?;
            changed = false;
            match self
                .app
                .send_task(&entry.task, entry.args.clone(), entry.call_options())
            {
                Ok(result) => {
                    tracing::info!(entry = %entry.name, task = %entry.task, id = result.id(), "beat: sent");
                    tick.sent
                        .push((entry.name.clone(), result.id().to_string()));
                    self.due.insert(entry.name.clone(), next);
                }
                Err(e) => {
                    match previous {
                        Some(p) => self.store.runs.insert(entry.name.clone(), p),
                        None => self.store.runs.remove(&entry.name),
                    };
                    self.store.save()?;
                    return Err(e.into());
                }
            }
        }
        if changed {
            self.store.save()?;
        }
        tick.next_due = self
            .due
            .values()
            .flatten()
            .min()
            .map(|t| SystemTime::from(*t));
        Ok(tick)
    }

    /// Runs until `stop` is set: ticks at least once a second and when an entry is due,
    /// then gives the lock up. Broker errors are logged and retried at the next tick.
    ///
    /// # Errors
    /// A store that cannot be written.
    pub fn run(&mut self, stop: &std::sync::atomic::AtomicBool) -> Result<(), BeatError> {
        use std::sync::atomic::Ordering;
        let mut outcome = Ok(());
        while !stop.load(Ordering::Acquire) {
            let now = SystemTime::now();
            let mut sleep = Duration::from_secs(1);
            match self.tick_at(now) {
                Ok(tick) => {
                    if let Some(next) = tick.next_due {
                        let until = next.duration_since(SystemTime::now()).unwrap_or_default();
                        sleep = sleep.min(until.max(Duration::from_millis(5)));
                    }
                }
                Err(BeatError::Store { path, reason }) => {
                    outcome = Err(BeatError::Store { path, reason });
                    break;
                }
                Err(e) => tracing::warn!(error = %e, "beat: tick failed; retrying"),
            }
            // Wake up in small steps so a stop request is seen quickly.
            let deadline = std::time::Instant::now() + sleep;
            while !stop.load(Ordering::Acquire) {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    break;
                }
                std::thread::sleep(left.min(Duration::from_millis(100)));
            }
        }
        self.release();
        outcome
    }

    /// Gives the lock up (when held), so a standby beat takes over at once.
    pub fn release(&mut self) {
        if !self.leader {
            return;
        }
        self.leader = false;
        // A lifetime of zero gives the lock up: every broker frees it for the next taker
        // at once (RabbitMQ deletes the exclusive lock queue).
        if let Err(e) = self.take_lock(Duration::ZERO) {
            tracing::warn!(error = %e, "beat: could not give the lock up; it runs out by itself");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An independent reading of one crontab field, for the reference below.
    fn reference_field(text: &str, v: u32, min: u32, max: u32) -> bool {
        text.split(',').any(|part| {
            let (range, step) = match part.split_once('/') {
                Some((r, s)) => (r, s.parse::<u32>().unwrap()),
                None => (part, 1),
            };
            let (lo, hi) = if range == "*" {
                (min, max)
            } else if let Some((a, b)) = range.split_once('-') {
                (a.parse().unwrap(), b.parse().unwrap())
            } else {
                let a: u32 = range.parse().unwrap();
                (a, if part.contains('/') { max } else { a })
            };
            v >= lo && v <= hi && (v - lo).is_multiple_of(step)
        })
    }

    /// The next firing minute by scanning minute after minute.
    fn reference_next(fields: &[String; 5], t: DateTime<Utc>, days: i64) -> Option<DateTime<Utc>> {
        let mut m = Utc
            .with_ymd_and_hms(t.year(), t.month(), t.day(), t.hour(), t.minute(), 0)
            .unwrap();
        for _ in 0..days * 24 * 60 {
            m += chrono::Duration::minutes(1);
            if reference_field(&fields[0], m.minute(), 0, 59)
                && reference_field(&fields[1], m.hour(), 0, 23)
                && reference_field(&fields[2], m.day(), 1, 31)
                && reference_field(&fields[3], m.month(), 1, 12)
                && reference_field(&fields[4], m.weekday().num_days_from_sunday(), 0, 6)
            {
                return Some(m);
            }
        }
        None
    }

    fn field(min: u32, max: u32) -> impl Strategy<Value = String> {
        let n = min..=max;
        prop_oneof![
            Just("*".to_string()),
            (1..=max.max(2)).prop_map(|s| format!("*/{s}")),
            n.clone().prop_map(|a| a.to_string()),
            (n.clone(), n.clone()).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
            (n.clone(), n.clone(), 1..6u32).prop_map(|(a, b, s)| format!(
                "{}-{}/{s}",
                a.min(b),
                a.max(b)
            )),
            proptest::collection::vec(n, 1..4).prop_map(|v| v
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",")),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn next_after_matches_a_minute_scan(
            minute in field(0, 59),
            hour in field(0, 23),
            dom in prop_oneof![Just("*".to_string()), field(1, 28)],
            month in prop_oneof![Just("*".to_string()), field(1, 12)],
            dow in prop_oneof![Just("*".to_string()), field(0, 6)],
            start in 0i64..4_000_000_000,
        ) {
            let fields = [minute, hour, dom, month, dow];
            let cron: Crontab = fields.join(" ").parse().unwrap();
            let t = DateTime::from_timestamp(start, 0).unwrap();
            let days = 800;
            let expected = reference_next(&fields, t, days);
            let got = cron.next_after(t);
            match expected {
                Some(e) => prop_assert_eq!(got, Some(e)),
                None => prop_assert!(got.is_none_or(|g| g > t + chrono::Duration::days(days))),
            }
            if let Some(g) = got {
                prop_assert!(cron.matches(g));
            }
        }
    }

    #[test]
    fn crontab_errors_are_clear() {
        for bad in [
            "* * * *",
            "60 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "* * * 13 *",
            "*/0 * * * *",
            "5-1 * * * *",
            "a * * * *",
            "1,,2 * * * *",
        ] {
            let e = bad.parse::<Crontab>().unwrap_err();
            assert!(matches!(e, BeatError::Crontab { .. }), "{bad}: {e}");
        }
        let c: Crontab = "0 9 * jan,jul mon-fri".parse().unwrap();
        let t = Utc.with_ymd_and_hms(2026, 1, 3, 10, 0, 0).unwrap(); // a Saturday
        assert_eq!(
            c.next_after(t),
            Some(Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap())
        );
        let sunday7: Crontab = "0 0 * * 7".parse().unwrap();
        let sunday0: Crontab = "0 0 * * sun".parse().unwrap();
        assert_eq!(sunday7, sunday0);
        let never: Crontab = "0 0 31 2 *".parse().unwrap();
        assert_eq!(never.next_after(t), None);
    }

    #[test]
    fn schedule_files_parse_in_both_formats() {
        let json = r#"{"entries": [
            {"name": "a", "task": "tasks.add", "args": [1, 2], "schedule": 5},
            {"name": "b", "task": "tasks.noop", "schedule": {"crontab": {"minute": "*/10"}},
             "options": {"queue": "q", "priority": 3, "expires": 30}}
        ]}"#;
        let entries = parse_entries(json, false).unwrap();
        assert_eq!(entries[0].schedule, Schedule::every(Duration::from_secs(5)));
        assert_eq!(entries[1].queue.as_deref(), Some("q"));
        assert_eq!(
            entries[1].schedule,
            Schedule::crontab("*/10 * * * *").unwrap()
        );
        let celery = r#"
            [beat_schedule.nightly]
            task = "tasks.noop"
            schedule = "0 3 * * *"
        "#;
        assert_eq!(parse_entries(celery, true).unwrap()[0].name, "nightly");
        for bad in [
            r#"{"entries": [{"name": "a", "task": "t", "schedule": -1}]}"#,
            r#"{"entries": [{"name": "a", "task": "t", "schedule": "x"}]}"#,
            r#"{"entries": [{"name": "a", "task": "t", "schedule": 1, "bogus": 1}]}"#,
            r#"{"entries": [{"name": "a", "task": "t", "schedule": 1}, {"name": "a", "task": "t", "schedule": 2}]}"#,
            "not json",
        ] {
            assert!(
                matches!(parse_entries(bad, false), Err(BeatError::Config { .. })),
                "{bad}"
            );
        }
    }
}

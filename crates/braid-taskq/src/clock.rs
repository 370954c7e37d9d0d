//! Time as Celery writes it: ISO 8601 with a UTC offset, and seconds since the epoch.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};

/// Now, in UTC.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now()
}

/// Seconds since the Unix epoch, as Redis scores and kombu's `time()` use them.
pub(crate) fn epoch_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A time in seconds since the epoch.
pub(crate) fn to_epoch(t: DateTime<Utc>) -> f64 {
    t.timestamp_micros() as f64 / 1e6
}

/// `t` as Python's `datetime.isoformat()` writes an aware UTC time:
/// `2024-05-01T10:00:00.123456+00:00`.
pub(crate) fn isoformat(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, false)
}

/// `now + d`, saturating at the far future.
pub(crate) fn after(d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| now().checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Parses an ISO 8601 time as Celery sends it (`eta`, `expires`, `date_done`). A time
/// without an offset is taken as UTC, as Celery does with `enable_utc`.
pub(crate) fn parse(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Some(t.and_utc());
        }
    }
    // Python also writes a space between date and time with an offset.
    DateTime::parse_from_rfc3339(&text.replacen(' ', "T", 1))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// How long until `t`; zero when it has passed.
pub(crate) fn until(t: DateTime<Utc>) -> Duration {
    (t - now()).to_std().unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_isoformat_round_trips() {
        let t = parse("2026-11-26T09:04:54.894329+00:00").unwrap();
        assert_eq!(isoformat(t), "2026-11-26T09:04:54.894329+00:00");
        let naive = parse("2026-11-26T09:04:54.894329").unwrap();
        assert_eq!(naive, t);
        let offset = parse("2026-11-26T10:04:54.894329+01:00").unwrap();
        assert_eq!(offset, t);
        assert_eq!(
            parse("2026-11-26T09:04:54+00:00").unwrap().timestamp(),
            t.timestamp()
        );
        assert!(parse("yesterday").is_none());
    }

    #[test]
    fn until_is_zero_in_the_past() {
        assert_eq!(until(parse("2000-01-01T00:00:00").unwrap()), Duration::ZERO);
        assert!(until(after(Duration::from_secs(60))) > Duration::from_secs(50));
    }
}

//! The arithmetic of a benchmark: medians, ratios by unit, and the scaling laws.

/// The median of `values`; `None` when there are none. An even count takes the mean of
/// the two middle values. NaNs sort last, so they can only shift the median upward.
pub(crate) fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Some(if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    })
}

/// What a unit measures: a time (and how many seconds one unit is) or a rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnitKind {
    /// A duration; lower is better. The value is the unit's size in seconds as a power
    /// of ten (`us` is -6).
    Time(i32),
    /// Something per second (`tasks/s`, `MB/s`); higher is better.
    Rate,
    /// Anything else: no ratio is computed.
    Other,
}

/// Classifies a unit: `ns`, `us`, `ms`, `s` are times; anything ending in `/s` is a rate.
pub(crate) fn unit_kind(unit: &str) -> UnitKind {
    match unit {
        "ns" => UnitKind::Time(-9),
        "us" => UnitKind::Time(-6),
        "ms" => UnitKind::Time(-3),
        "s" => UnitKind::Time(0),
        _ if unit.ends_with("/s") => UnitKind::Rate,
        _ => UnitKind::Other,
    }
}

/// Converts `value` from unit `from` to unit `to`; `None` unless both are times or the
/// units are the same.
pub(crate) fn convert(value: f64, from: &str, to: &str) -> Option<f64> {
    if from == to {
        return Some(value);
    }
    match (unit_kind(from), unit_kind(to)) {
        // Dividing by an exact power of ten keeps 54000 ns exactly 54 us.
        (UnitKind::Time(a), UnitKind::Time(b)) if a >= b => Some(value * 10f64.powi(a - b)),
        (UnitKind::Time(a), UnitKind::Time(b)) => Some(value / 10f64.powi(b - a)),
        _ => None,
    }
}

/// How many times better braid is than Python: python / braid for times, braid / python
/// for rates. `None` for other units, and when the result is not a finite positive number.
pub(crate) fn ratio(unit: &str, braid: f64, python: f64) -> Option<f64> {
    let r = match unit_kind(unit) {
        UnitKind::Time(_) => python / braid,
        UnitKind::Rate => braid / python,
        UnitKind::Other => return None,
    };
    finite(r).filter(|r| *r > 0.0)
}

/// `Some(x)` when `x` is finite: JSON has no NaN or infinity.
pub(crate) fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// Speedup S = T1 / Tp.
pub(crate) fn speedup(t1: f64, tp: f64) -> f64 {
    t1 / tp
}

/// Efficiency E = S / p.
pub(crate) fn efficiency(speedup: f64, p: usize) -> f64 {
    speedup / p as f64
}

/// The Karp–Flatt experimentally determined serial fraction e = (1/S − 1/p) / (1 − 1/p);
/// undefined (`None`) for p = 1 and when S is not a finite positive number.
pub(crate) fn karp_flatt(speedup: f64, p: usize) -> Option<f64> {
    if p <= 1 || !(speedup.is_finite() && speedup > 0.0) {
        return None;
    }
    let p = p as f64;
    finite((1.0 / speedup - 1.0 / p) / (1.0 - 1.0 / p))
}

/// Amdahl's law: the speedup on p workers of a job whose serial fraction is f,
/// S = 1 / (f + (1 − f) / p).
pub(crate) fn amdahl(f: f64, p: usize) -> Option<f64> {
    finite(1.0 / (f + (1.0 - f) / p as f64))
}

/// Gustafson's law: the scaled speedup on p workers with serial fraction f,
/// S = p − f (p − 1).
pub(crate) fn gustafson(f: f64, p: usize) -> Option<f64> {
    let p = p as f64;
    finite(p - f * (p - 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9 * (1.0 + a.abs().max(b.abs()))
    }

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[4.0]), Some(4.0));
        assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[9.0, 1.0, 1.0, 100.0, 2.0]), Some(2.0));
    }

    #[test]
    fn units_are_classified() {
        assert_eq!(unit_kind("ns"), UnitKind::Time(-9));
        assert_eq!(unit_kind("s"), UnitKind::Time(0));
        assert_eq!(unit_kind("tasks/s"), UnitKind::Rate);
        assert_eq!(unit_kind("bytes"), UnitKind::Other);
    }

    #[test]
    fn time_units_convert() {
        assert_eq!(convert(54.0, "us", "ns"), Some(54_000.0));
        assert_eq!(convert(54_000.0, "ns", "us"), Some(54.0));
        assert_eq!(convert(2.0, "s", "ms"), Some(2_000.0));
        assert_eq!(convert(2_500.0, "ms", "s"), Some(2.5));
        assert_eq!(convert(3.0, "tasks/s", "tasks/s"), Some(3.0));
        assert_eq!(convert(3.0, "tasks/s", "s"), None);
    }

    #[test]
    fn ratio_is_higher_when_braid_is_better() {
        // Times: Python took 54 us, braid 2 us: braid is 27x better.
        assert!(close(ratio("us", 2.0, 54.0).unwrap(), 27.0));
        // Rates: braid does 10,000 tasks/s, Python 500: 20x better.
        assert!(close(ratio("tasks/s", 10_000.0, 500.0).unwrap(), 20.0));
        // Slower braid gives a ratio below 1.
        assert!(close(ratio("s", 2.0, 1.0).unwrap(), 0.5));
        assert_eq!(ratio("widgets", 1.0, 2.0), None);
        assert_eq!(ratio("us", 0.0, 2.0), None);
        assert_eq!(ratio("us", 1.0, 0.0), None);
    }

    #[test]
    fn speedup_efficiency_and_karp_flatt() {
        let s = speedup(1.0, 0.5);
        assert!(close(s, 2.0));
        assert!(close(efficiency(s, 2), 1.0));
        // Perfect scaling has no serial part.
        assert!(close(karp_flatt(s, 2).unwrap(), 0.0));
        // No speedup at all on 4 workers: entirely serial.
        assert!(close(karp_flatt(1.0, 4).unwrap(), 1.0));
        // S = 3 on 4 workers: (1/3 - 1/4) / (3/4) = 1/9.
        assert!(close(karp_flatt(3.0, 4).unwrap(), 1.0 / 9.0));
        assert_eq!(karp_flatt(1.0, 1), None);
        assert_eq!(karp_flatt(f64::INFINITY, 2), None);
    }

    #[test]
    fn amdahl_and_gustafson() {
        assert!(close(amdahl(0.0, 8).unwrap(), 8.0));
        assert!(close(amdahl(1.0, 8).unwrap(), 1.0));
        // f = 0.1 on 10 workers: 1 / (0.1 + 0.09) = 5.263...
        assert!(close(amdahl(0.1, 10).unwrap(), 1.0 / 0.19));
        assert!(close(gustafson(0.1, 10).unwrap(), 9.1));
        assert!(close(gustafson(0.0, 4).unwrap(), 4.0));
        assert!(close(gustafson(1.0, 4).unwrap(), 1.0));
        // Amdahl with the Karp-Flatt fraction measured at p reproduces the speedup at p.
        let f = karp_flatt(3.0, 4).unwrap();
        assert!(close(amdahl(f, 4).unwrap(), 3.0));
    }
}

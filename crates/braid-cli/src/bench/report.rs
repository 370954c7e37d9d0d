//! What a benchmark run produces: one [`CaseResult`] per case, printed as a table and
//! written as JSON.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::stats;

/// The outcome of one benchmark case, as it appears in the JSON list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseResult {
    /// The suite the case belongs to (`threads`, ...).
    pub suite: String,
    /// The case's name, unique within its suite.
    pub name: String,
    /// The unit of `braid` and `python`: a time (`ns`, `us`, `ms`, `s`) or a rate (`.../s`).
    pub unit: String,
    /// braid's median measurement.
    pub braid: f64,
    /// The Python equivalent's median measurement; `None` when Python or a package it
    /// needs is missing (the note says which).
    pub python: Option<f64>,
    /// How many times better braid is (python / braid for times, braid / python for rates).
    pub ratio: Option<f64>,
    /// Why `python` is missing, or what else a reader should know.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// For scaling cases: speedup, efficiency and serial fraction over 1..P workers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling: Option<Scaling>,
}

/// How a job's time falls as workers are added, for braid and each Python variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scaling {
    /// The worker counts measured, 1..=P.
    pub workers: Vec<usize>,
    /// One series per implementation (braid first), each aligned with `workers`.
    pub series: Vec<Series>,
}

/// The scaling of one implementation: its times and the laws fitted to them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// `braid`, `python threads`, `python processes`, ...
    pub name: String,
    /// Median time on p workers, in the case's unit.
    pub times: Vec<f64>,
    /// S = T1 / Tp.
    pub speedup: Vec<Option<f64>>,
    /// E = S / p.
    pub efficiency: Vec<Option<f64>>,
    /// Karp–Flatt serial fraction e = (1/S − 1/p) / (1 − 1/p); `None` at p = 1.
    pub karp_flatt: Vec<Option<f64>>,
    /// f: the Karp–Flatt fraction at the largest p, used by the two laws below.
    pub serial_fraction: Option<f64>,
    /// Amdahl's predicted speedup 1 / (f + (1 − f) / p).
    pub amdahl: Vec<Option<f64>>,
    /// Gustafson's scaled speedup p − f (p − 1).
    pub gustafson: Vec<Option<f64>>,
}

impl Series {
    /// Fits the scaling laws to `times`, measured on `workers` (which starts at 1).
    pub(crate) fn from_times(name: &str, workers: &[usize], times: Vec<f64>) -> Series {
        let t1 = workers
            .iter()
            .zip(&times)
            .find(|(p, _)| **p == 1)
            .map(|(_, t)| *t);
        let speedup: Vec<Option<f64>> = times
            .iter()
            .map(|tp| t1.and_then(|t1| stats::finite(stats::speedup(t1, *tp))))
            .collect();
        let efficiency = speedup
            .iter()
            .zip(workers)
            .map(|(s, p)| s.map(|s| stats::efficiency(s, *p)))
            .collect();
        let karp_flatt: Vec<Option<f64>> = speedup
            .iter()
            .zip(workers)
            .map(|(s, p)| s.and_then(|s| stats::karp_flatt(s, *p)))
            .collect();
        let serial_fraction = karp_flatt.last().copied().flatten();
        let law = |law: fn(f64, usize) -> Option<f64>| {
            workers
                .iter()
                .map(|p| serial_fraction.and_then(|f| law(f, *p)))
                .collect()
        };
        Series {
            name: name.to_string(),
            amdahl: law(stats::amdahl),
            gustafson: law(stats::gustafson),
            times,
            speedup,
            efficiency,
            karp_flatt,
            serial_fraction,
        }
    }
}

/// A number with about four significant digits, never in exponent form for the sizes a
/// benchmark produces.
pub(crate) fn number(x: f64) -> String {
    let a = x.abs();
    if !x.is_finite() {
        format!("{x}")
    } else if a >= 1000.0 {
        format!("{x:.0}")
    } else if a >= 100.0 {
        format!("{x:.1}")
    } else if a >= 10.0 {
        format!("{x:.2}")
    } else if a >= 1.0 || a == 0.0 {
        format!("{x:.3}")
    } else if a >= 0.001 {
        format!("{x:.4}")
    } else {
        format!("{x:.3e}")
    }
}

fn optional(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_string(), number)
}

fn ratio_text(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_string(), |r| format!("{}x", number(r)))
}

/// Lays out rows as columns: the first `left` columns left-aligned, the rest right-aligned.
fn columns(rows: &[Vec<String>], left: usize, indent: &str) -> String {
    let count = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..count)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = indent.to_string();
        for (c, cell) in row.iter().enumerate() {
            if c > 0 {
                line.push_str("  ");
            }
            let pad = widths[c].saturating_sub(cell.chars().count());
            if c < left {
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', pad));
            } else {
                line.extend(std::iter::repeat_n(' ', pad));
                line.push_str(cell);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The results as the table `braid bench` prints: one row per case, then the notes, then
/// a sub-table per scaling case.
pub(crate) fn table(results: &[CaseResult]) -> String {
    let several_suites = results.windows(2).any(|w| w[0].suite != w[1].suite);
    let mut rows = vec![vec![
        "case".to_string(),
        "unit".to_string(),
        "braid".to_string(),
        "python".to_string(),
        "ratio".to_string(),
    ]];
    for r in results {
        let name = if several_suites {
            format!("{}/{}", r.suite, r.name)
        } else {
            r.name.clone()
        };
        rows.push(vec![
            name,
            r.unit.clone(),
            number(r.braid),
            optional(r.python),
            ratio_text(r.ratio),
        ]);
    }
    let mut out = columns(&rows, 2, "");
    let notes: Vec<&CaseResult> = results.iter().filter(|r| r.note.is_some()).collect();
    if !notes.is_empty() {
        out.push('\n');
        for r in notes {
            if let Some(note) = &r.note {
                // Writing to a String cannot fail.
                writeln!(out, "{}: {note}", r.name).expect("write to String");
            }
        }
    }
    for r in results {
        if let Some(scaling) = &r.scaling {
            out.push('\n');
            out.push_str(&scaling_table(r, scaling));
        }
    }
    out
}

/// The sub-table of one scaling case.
pub(crate) fn scaling_table(result: &CaseResult, scaling: &Scaling) -> String {
    let mut out = format!(
        "{}: time ({}) on p workers, speedup S = T1/Tp, efficiency E = S/p, Karp-Flatt e; \
         Amdahl and Gustafson use f = e at p = {}\n",
        result.name,
        result.unit,
        scaling.workers.last().copied().unwrap_or(1)
    );
    let mut rows = vec![
        ["series", "p", "time", "S", "E", "e", "Amdahl", "Gustafson"]
            .map(String::from)
            .to_vec(),
    ];
    for series in &scaling.series {
        for (i, p) in scaling.workers.iter().enumerate() {
            let at = |v: &[Option<f64>]| optional(v.get(i).copied().flatten());
            rows.push(vec![
                if i == 0 {
                    series.name.clone()
                } else {
                    String::new()
                },
                p.to_string(),
                optional(series.times.get(i).copied()),
                at(&series.speedup),
                at(&series.efficiency),
                at(&series.karp_flatt),
                at(&series.amdahl),
                at(&series.gustafson),
            ]);
        }
    }
    out.push_str(&columns(&rows, 1, "  "));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CaseResult {
        let workers = vec![1, 2];
        CaseResult {
            suite: "threads".into(),
            name: "cpu_scaling".into(),
            unit: "s".into(),
            braid: 0.01,
            python: Some(1.0),
            ratio: Some(100.0),
            note: Some("python processes: 0.5 s".into()),
            scaling: Some(Scaling {
                series: vec![
                    Series::from_times("braid", &workers, vec![0.02, 0.01]),
                    Series::from_times("python threads", &workers, vec![1.0, 1.0]),
                ],
                workers,
            }),
        }
    }

    #[test]
    fn series_fits_the_laws() {
        let s = Series::from_times("braid", &[1, 2, 4], vec![1.0, 0.5, 0.3125]);
        assert_eq!(s.speedup, vec![Some(1.0), Some(2.0), Some(3.2)]);
        assert_eq!(s.efficiency, vec![Some(1.0), Some(1.0), Some(0.8)]);
        assert_eq!(s.karp_flatt[0], None);
        assert_eq!(s.karp_flatt[1], Some(0.0));
        // (1/3.2 - 1/4) / (3/4) = 1/12
        let f = s.serial_fraction.unwrap();
        assert!((f - 1.0 / 12.0).abs() < 1e-12);
        assert_eq!(s.amdahl[0], Some(1.0));
        assert!((s.amdahl[2].unwrap() - 3.2).abs() < 1e-12);
        assert_eq!(s.gustafson[0], Some(1.0));
        assert!((s.gustafson[2].unwrap() - (4.0 - 3.0 / 12.0)).abs() < 1e-12);
    }

    #[test]
    fn json_shape() {
        let mut plain = sample();
        plain.note = None;
        plain.scaling = None;
        plain.python = None;
        plain.ratio = None;
        let value = serde_json::to_value(vec![plain, sample()]).unwrap();
        let cases = value.as_array().unwrap();
        let first = cases[0].as_object().unwrap();
        let keys: Vec<&str> = first.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["braid", "name", "python", "ratio", "suite", "unit"],
            "optional fields are left out, python and ratio are null"
        );
        assert!(first["python"].is_null() && first["ratio"].is_null());
        let scaling = &cases[1]["scaling"];
        assert_eq!(scaling["workers"], serde_json::json!([1, 2]));
        let braid = &scaling["series"][0];
        assert_eq!(braid["name"], "braid");
        assert_eq!(braid["speedup"], serde_json::json!([1.0, 2.0]));
        assert_eq!(braid["karp_flatt"][0], serde_json::Value::Null);
        assert_eq!(braid["serial_fraction"], serde_json::json!(0.0));
        let threads = &scaling["series"][1];
        assert_eq!(threads["efficiency"], serde_json::json!([1.0, 0.5]));
        assert_eq!(threads["serial_fraction"], serde_json::json!(1.0));
        // And it reads back.
        let back: Vec<CaseResult> = serde_json::from_value(value).unwrap();
        assert_eq!(back[1], sample());
    }

    #[test]
    fn table_has_every_case_and_the_scaling() {
        let text = table(&[sample()]);
        let header = text.lines().next().unwrap();
        for column in ["case", "unit", "braid", "python", "ratio"] {
            assert!(header.contains(column), "{header}");
        }
        assert!(text.contains("cpu_scaling"), "{text}");
        assert!(text.contains("100.0x"), "{text}");
        assert!(text.contains("python threads"), "{text}");
        assert!(text.contains("python processes: 0.5 s"), "{text}");
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(number(54.123), "54.12");
        assert_eq!(number(1234.4), "1234");
        assert_eq!(number(0.01234), "0.0123");
        assert_eq!(number(2.0), "2.000");
        assert_eq!(number(0.0), "0.000");
        assert_eq!(number(0.00012), "1.200e-4");
    }
}

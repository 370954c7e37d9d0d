//! `braid bench` end to end, through the built binary, with the work shrunk a hundredfold.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// A fresh scratch folder for one test.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("braid-bench-{}-{test}", std::process::id()));
    if dir.exists() {
        fs::remove_dir_all(&dir).unwrap();
    }
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// `braid bench ARGS... --quick --iterations-scale 0.01` with `BRAID_PYTHON` set to `python`.
fn bench(python: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_braid"))
        .arg("bench")
        .args(args)
        .args(["--quick", "--iterations-scale", "0.01"])
        .env("BRAID_PYTHON", python)
        .env_remove("BRAID_BENCH_DIR")
        .output()
        .unwrap()
}

fn succeeded(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "exit {}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn read_json(path: &Path) -> Vec<Value> {
    let text = fs::read_to_string(path).unwrap();
    match serde_json::from_str(&text).unwrap() {
        Value::Array(cases) => cases,
        other => panic!("not a list: {other}"),
    }
}

fn case<'a>(cases: &'a [Value], name: &str) -> &'a Value {
    cases
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no case {name} in {cases:?}"))
}

const THREADS_CASES: [&str; 6] = [
    "queue_ping_pong",
    "lock_uncontended",
    "lock_contended",
    "event_wakeup",
    "condition_wakeup",
    "cpu_scaling",
];

#[test]
fn threads_without_python_reports_null_and_still_measures_braid() {
    let dir = scratch("no-python");
    let json = dir.join("out.json");
    let svg = dir.join("scaling.svg");
    let output = bench(
        "/nonexistent/python",
        &[
            "threads",
            "--json",
            json.to_str().unwrap(),
            "--plot",
            svg.to_str().unwrap(),
        ],
    );
    let stdout = succeeded(&output);
    assert!(
        stdout.contains("python: not found (/nonexistent/python)"),
        "{stdout}"
    );

    let cases = read_json(&json);
    let names: Vec<&str> = cases.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, THREADS_CASES);
    for c in &cases {
        assert!(stdout.contains(c["name"].as_str().unwrap()), "{stdout}");
        assert_eq!(c["suite"], "threads");
        assert!(c["braid"].as_f64().unwrap() > 0.0, "{c}");
        assert!(c["python"].is_null(), "{c}");
        assert!(c["ratio"].is_null(), "{c}");
        assert_eq!(c["note"], "python: not found (/nonexistent/python)");
    }
    assert_eq!(case(&cases, "queue_ping_pong")["unit"], "us");
    assert_eq!(case(&cases, "lock_contended")["unit"], "ns");

    let scaling = &case(&cases, "cpu_scaling")["scaling"];
    let workers: Vec<u64> = scaling["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap())
        .collect();
    let max = workers.len() as u64;
    assert!(max >= 2);
    assert_eq!(workers, (1..=max).collect::<Vec<_>>());
    let series = scaling["series"].as_array().unwrap();
    assert_eq!(series.len(), 1, "only braid without Python: {series:?}");
    let braid = &series[0];
    assert_eq!(braid["name"], "braid");
    assert_eq!(braid["speedup"][0], 1.0);
    assert_eq!(braid["efficiency"][0], 1.0);
    assert!(braid["karp_flatt"][0].is_null());
    for key in [
        "times",
        "speedup",
        "efficiency",
        "karp_flatt",
        "amdahl",
        "gustafson",
    ] {
        assert_eq!(braid[key].as_array().unwrap().len(), workers.len(), "{key}");
    }
    assert!(braid["serial_fraction"].is_number(), "{braid}");
    assert!(stdout.contains("Karp-Flatt"), "{stdout}");

    let drawing = fs::read_to_string(&svg).unwrap();
    assert!(drawing.starts_with("<svg") && drawing.contains("braid (measured)"));
    fs::remove_dir_all(&dir).unwrap();
}

/// A stand-in interpreter: a shell script that answers the version probe, then prints
/// `answer` for every case (or fails when `answer` is empty).
fn fake_python(dir: &Path, answer: &str) -> PathBuf {
    let path = dir.join("python");
    let body = if answer.is_empty() {
        "echo 'AssertionError: the counter is 3' >&2\nexit 1".to_string()
    } else {
        format!("echo '{answer}'")
    };
    fs::write(
        &path,
        format!("#!/bin/sh\nif [ \"$1\" = -c ]; then echo 3.99.0; exit 0; fi\n{body}\n"),
    )
    .unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn the_script_protocol_missing_packages_failures_and_units() {
    let dir = scratch("protocol");
    let json = dir.join("out.json");
    let json_arg = json.to_str().unwrap();

    let missing = fake_python(&dir, r#"{"missing": "numpy"}"#);
    let output = bench(
        missing.to_str().unwrap(),
        &["threads", "--case", "lock_uncontended", "--json", json_arg],
    );
    let stdout = succeeded(&output);
    assert!(stdout.contains("python 3.99.0"), "{stdout}");
    let cases = read_json(&json);
    assert_eq!(cases.len(), 1);
    assert!(cases[0]["python"].is_null());
    assert_eq!(cases[0]["note"], "python: package numpy missing");

    let failing = fake_python(&dir, "");
    let output = bench(
        failing.to_str().unwrap(),
        &["threads", "--case", "event_wakeup", "--json", json_arg],
    );
    succeeded(&output);
    let note = read_json(&json)[0]["note"].as_str().unwrap().to_string();
    assert!(note.contains("AssertionError: the counter is 3"), "{note}");

    // A Python answer in ms is converted to the case's us; the ratio is python / braid.
    let answering = fake_python(&dir, r#"{"unit": "ms", "value": 5}"#);
    let output = bench(
        answering.to_str().unwrap(),
        &["threads", "--case", "queue_ping_pong", "--json", json_arg],
    );
    succeeded(&output);
    let c = &read_json(&json)[0];
    assert_eq!(c["python"], 5000.0);
    let ratio = c["ratio"].as_f64().unwrap();
    let expected = 5000.0 / c["braid"].as_f64().unwrap();
    assert!((ratio - expected).abs() <= 1e-9 * expected, "{c}");
    assert!(c.get("note").is_none(), "{c}");

    // A scaling answer with the wrong prime count is not used.
    let wrong = fake_python(
        &dir,
        r#"{"unit": "s", "check": 1, "variants": {"threads": {"1": 1, "2": 1}}}"#,
    );
    let output = bench(
        wrong.to_str().unwrap(),
        &["threads", "--case", "cpu_scaling", "--json", json_arg],
    );
    succeeded(&output);
    let c = &read_json(&json)[0];
    assert!(c["python"].is_null(), "{c}");
    assert!(
        c["note"].as_str().unwrap().contains("python computed 1"),
        "{c}"
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn threads_with_real_python() {
    let python = match Command::new("python3").arg("--version").output() {
        Ok(out) if out.status.success() => "python3",
        _ => {
            eprintln!("python3 is not installed: the comparison with real Python is not run");
            return;
        }
    };
    let dir = scratch("python");
    let json = dir.join("out.json");
    let output = bench(
        python,
        &[
            "threads",
            "--case",
            "lock_uncontended,cpu_scaling",
            "--json",
            json.to_str().unwrap(),
        ],
    );
    succeeded(&output);
    let cases = read_json(&json);
    assert_eq!(cases.len(), 2);
    let lock = case(&cases, "lock_uncontended");
    assert!(lock["python"].as_f64().unwrap() > 0.0, "{lock}");
    assert!(lock["ratio"].as_f64().unwrap() > 0.0, "{lock}");
    assert!(lock.get("note").is_none(), "{lock}");

    let cpu = case(&cases, "cpu_scaling");
    assert!(cpu["python"].as_f64().unwrap() > 0.0, "{cpu}");
    let series: Vec<&str> = cpu["scaling"]["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(series, ["braid", "python threads", "python processes"]);
    let note = cpu["note"].as_str().unwrap();
    assert!(note.starts_with("python processes at p = "), "{note}");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_unknown_suite_or_case_is_a_clear_error() {
    let output = bench("/nonexistent/python", &["thread"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unknown suite `thread`; valid suites: threads, ")
            && stderr.contains(", all"),
        "{stderr}"
    );

    let output = bench("/nonexistent/python", &["threads", "--case", "lock"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown case `lock`"), "{stderr}");
    assert!(stderr.contains("lock_uncontended"), "{stderr}");
}

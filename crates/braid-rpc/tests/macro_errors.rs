//! The `#[service]` macro's errors for the forms it rejects (`tests/ui/*.rs`, each checked
//! against the compiler output in its `.stderr` file), and `tests/ui/pass_*.rs`, services
//! using every supported form, checked to compile and run. After changing a message,
//! regenerate the expected output with
//! `TRYBUILD=overwrite cargo test -p braid-rpc --test macro_errors` and read the diff.

use std::path::PathBuf;

#[test]
fn service_macro_accepts_the_supported_forms_and_explains_the_rest() {
    let mut cases: Vec<PathBuf> = std::fs::read_dir("tests/ui")
        .expect("tests/ui")
        .map(|entry| entry.expect("a tests/ui entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "rs"))
        .collect();
    cases.sort();
    let t = trybuild::TestCases::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy();
        if name.starts_with("pass_") {
            t.pass(case);
        } else {
            t.compile_fail(case);
        }
    }
}

//! Helpers shared by the integration tests: the binary with a clean environment, output
//! accessors and the usual assertions. Each test binary uses only some of them.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

use tokbench::result::RunResult;

/// A command line as a `Vec<&str>`: each string literal is split at white space, so flags read as
/// they would be typed; any other expression (a path, a variable) is one argument as it is.
/// `argv!["kernel matmul --m 4 --out", path, "--idle-s 0"]`.
#[macro_export]
macro_rules! argv {
    // One expression, so temporaries in the arguments (`&dir.join("x")`) live as long as the
    // statement that uses the list.
    (@parts [$($done:expr),*];) => { [$($done),*].concat() };
    (@parts [$($done:expr),*]; $l:literal $(, $($rest:tt)*)?) => {
        $crate::argv!(@parts [$($done,)* $l.split_whitespace().collect::<Vec<&str>>()]; $($($rest)*)?)
    };
    (@parts [$($done:expr),*]; $e:expr $(, $($rest:tt)*)?) => {
        $crate::argv!(@parts [$($done,)* vec![$e]]; $($($rest)*)?)
    };
    ($($t:tt)*) => { $crate::argv!(@parts []; $($t)*) };
}

/// Sampling flags that keep a measured workload short.
pub const QUICK: [&str; 6] = ["--samples", "3", "--min-time", "0", "--max-warmup", "0"];

/// The `tokbench` binary with the environment tests must not inherit from the user removed,
/// and a tuning cache private to this test process.
pub fn command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokbench"));
    cmd.env_remove("TOKBENCH_ADAPTER")
        .env_remove("TOKBENCH_RESULTS_DIR")
        .env_remove("TOKBENCH_PRESET")
        .env_remove("TOKBENCH_REPEAT")
        .env("TOKBENCH_TUNE_CACHE", test_tune_cache());
    cmd
}

/// Runs `tokbench args` to completion.
pub fn tokbench(args: &[&str]) -> Output {
    command().args(args).output().expect("run tokbench")
}

/// Runs `tokbench args`, asserts it succeeded, and returns its standard output.
pub fn stdout_ok(args: &[&str]) -> String {
    let out = tokbench(args);
    assert_code(&out, 0);
    stdout(&out)
}

/// A successful run and the result it wrote, in a temporary directory that lives as long as
/// this does (a pattern that leaves fields out with `..` drops it at once).
pub struct Written {
    /// What the run printed.
    pub out: Output,
    /// The result file.
    pub path: PathBuf,
    /// The result.
    pub doc: RunResult,
    _dir: tempfile::TempDir,
}

/// Runs `tokbench args --out FILE`, FILE in a fresh temporary directory, asserts it succeeded,
/// and loads the result it wrote.
pub fn run_ok(args: &[&str]) -> Written {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("result.json");
    let out = tokbench(&[args, &["--out", path.to_str().expect("a UTF-8 path")]].concat());
    assert_code(&out, 0);
    let doc = tokbench::result::io::load(&path).expect("the result written");
    Written {
        out,
        path,
        doc,
        _dir: dir,
    }
}

/// [`run_ok`] with [`QUICK`] sampling.
pub fn quick_ok(args: &[&str]) -> Written {
    run_ok(&[args, &QUICK].concat())
}

/// A tuning cache private to this test process, so tests never touch the user's.
pub fn test_tune_cache() -> PathBuf {
    std::env::temp_dir().join(format!("tokbench-test-tune-{}.json", std::process::id()))
}

/// Standard output as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts the exit code, showing both streams when it differs, and that nothing panicked.
pub fn assert_code(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(out),
        stderr(out)
    );
    assert!(!stderr(out).contains("panicked"), "{}", stderr(out));
}

/// The JSON document in the file at `path`.
pub fn read_json(path: impl AsRef<std::path::Path>) -> serde_json::Value {
    let text = std::fs::read_to_string(path).expect("a readable file");
    serde_json::from_str(&text).expect("a JSON document")
}

/// Asserts that `text` contains `needle`, showing the text when it does not.
pub fn assert_contains(text: &str, needle: &str) {
    assert!(text.contains(needle), "expected {needle:?} in: {text}");
}

/// Asserts exit code 2 with an error that mentions `needle`, and no panic.
pub fn assert_usage_error(out: &Output, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

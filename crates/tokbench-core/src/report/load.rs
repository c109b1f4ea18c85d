//! Loading many results at once: files, directories (recursively) and JSON-lines files (one
//! result document per line, as log collectors gather them from a fleet).
//!
//! Nothing here fails as a whole: every file or line that cannot be used becomes a [`Skipped`]
//! entry naming its path and the reason, and the caller decides whether what is left is enough.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::InputError;
use crate::result::RunResult;
use crate::result::io::{DEFAULT_MAX_BYTES, parse, read_limited};

/// A result document and where it came from.
#[derive(Debug, Clone)]
pub struct Source {
    /// The file, with ":LINE" for a JSON-lines file.
    pub label: String,
    /// The document.
    pub doc: RunResult,
}

/// A file or line that was not used, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// The file, directory or "file:LINE".
    pub source: String,
    /// Why it was skipped.
    pub reason: String,
}

/// Everything read from the paths given.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// Usable documents, in path order (directories sorted by name).
    pub results: Vec<Source>,
    /// What could not be used.
    pub skipped: Vec<Skipped>,
    /// Other tools' result files (llama-bench, `vllm bench serve`): shown beside tokbench's
    /// figures, never ranked.
    pub references: Vec<super::reference::ReferenceRow>,
    /// Node summaries (`run --adapter all`), each with its file: nodes ranked as a whole.
    pub node_summaries: Vec<(String, super::node_summary::NodeSummary)>,
}

impl Loaded {
    fn skip(&mut self, source: impl Into<String>, reason: impl Into<String>) {
        self.skipped.push(Skipped {
            source: source.into(),
            reason: reason.into(),
        });
    }

    /// The skipped entries as "source: reason" lines.
    pub fn skipped_lines(&self) -> Vec<String> {
        self.skipped
            .iter()
            .map(|s| format!("{}: {}", s.source, s.reason))
            .collect()
    }
}

/// File name endings read from directories. A file named explicitly is read whatever its name.
const RESULT_EXTENSIONS: [&str; 3] = ["json", "jsonl", "ndjson"];

/// Directories nested deeper than this are not entered (a guard against symlink loops).
const MAX_DEPTH: usize = 32;

/// Reads every result in `paths`: files, directories (recursively, `.json`, `.jsonl` and
/// `.ndjson` files; hidden entries are ignored) and JSON-lines files.
pub fn load_paths(paths: &[PathBuf]) -> Loaded {
    let mut loaded = Loaded::default();
    for path in paths {
        if path.is_dir() {
            let before = (loaded.results.len(), loaded.skipped.len());
            let mut files = Vec::new();
            walk(path, 0, &mut files, &mut loaded);
            for file in &files {
                load_file(file, &mut loaded);
            }
            if files.is_empty() && (loaded.results.len(), loaded.skipped.len()) == before {
                loaded.skip(
                    path.display().to_string(),
                    "directory holds no .json, .jsonl or .ndjson files",
                );
            }
        } else {
            load_file(path, &mut loaded);
        }
    }
    loaded
}

/// Reads the one result in `path` for `check` (`role` is "--baseline" or "--current"): a result
/// file, or a JSON-lines file with exactly one document.
pub fn load_one(path: &Path, role: &str) -> Result<Source, InputError> {
    let mut loaded = Loaded::default();
    if path.is_dir() {
        return Err(InputError::new(format!(
            "{role} {}: is a directory; give one result file",
            path.display()
        )));
    }
    load_file(path, &mut loaded);
    match (loaded.results.len(), loaded.skipped.first()) {
        (1, None) => Ok(loaded.results.remove(0)),
        (_, Some(s)) => Err(InputError::new(format!(
            "{role} {}: {}",
            s.source, s.reason
        ))),
        (0, None) => Err(InputError::new(format!(
            "{role} {}: holds no result",
            path.display()
        ))),
        (n, None) => Err(InputError::new(format!(
            "{role} {}: holds {n} results; give a file with exactly one",
            path.display()
        ))),
    }
}

fn walk(dir: &Path, depth: usize, files: &mut Vec<PathBuf>, loaded: &mut Loaded) {
    if depth > MAX_DEPTH {
        loaded.skip(
            dir.display().to_string(),
            format!("nested more than {MAX_DEPTH} directories deep; not entered"),
        );
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            loaded.skip(dir.display().to_string(), format!("cannot read: {e}"));
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            walk(&path, depth + 1, files, loaded);
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| RESULT_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        {
            files.push(path);
        }
    }
}

/// Largest JSON-lines file read: a fleet's results, each at most [`DEFAULT_MAX_BYTES`].
const JSON_LINES_MAX_BYTES: u64 = 1 << 30;

fn load_file(path: &Path, loaded: &mut Loaded) {
    let label = path.display().to_string();
    let lines_by_name = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "jsonl" | "ndjson"));
    let max_bytes = if lines_by_name {
        JSON_LINES_MAX_BYTES
    } else {
        DEFAULT_MAX_BYTES
    };
    let text = match read_limited(path, max_bytes) {
        Ok(text) => text,
        Err(e) => return loaded.skip(label, e),
    };
    if text.trim().is_empty() {
        return loaded.skip(label, "empty file");
    }
    if let Some(rows) = super::reference::parse(&text, &label) {
        loaded.references.extend(rows);
        return;
    }
    if let Some(summary) = super::node_summary::parse(&text) {
        return match summary {
            Ok(s) => loaded.node_summaries.push((label, s)),
            Err(e) => loaded.skip(label, e),
        };
    }
    if !lines_by_name {
        match parse(&text) {
            Ok(doc) => return accept(label, doc, loaded),
            // Log files collected from a fleet hold one compact document per line.
            Err(_) if looks_like_json_lines(&text) => {}
            Err(e) => return loaded.skip(label, e),
        }
    }
    load_lines(&label, &text, loaded);
}

/// At least two lines, one of them a whole result document on its own (a line with
/// `schema_version`; log text may surround it).
fn looks_like_json_lines(text: &str) -> bool {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines.len() >= 2
        && lines.iter().any(|l| {
            l.starts_with('{')
                && serde_json::from_str::<serde_json::Value>(l)
                    .is_ok_and(|v| v.get("schema_version").is_some())
        })
}

fn load_lines(label: &str, text: &str, loaded: &mut Loaded) {
    let (mut documents, mut other) = (0usize, Vec::new());
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let at = format!("{label}:{}", i + 1);
        if line.len() as u64 > DEFAULT_MAX_BYTES {
            loaded.skip(at, "line longer than a result document can be");
            continue;
        }
        if !line.starts_with('{') {
            // Log text around the documents (a table printed on stderr, a scheduler banner).
            other.push(i + 1);
            continue;
        }
        documents += 1;
        match parse(line) {
            Ok(doc) => accept(at, doc, loaded),
            Err(e) => loaded.skip(at, e),
        }
    }
    if !other.is_empty() {
        let reason = if documents == 0 {
            "not a tokbench result: no line holds a JSON document".to_string()
        } else {
            format!(
                "{} line(s) that are not JSON documents ignored (first: line {})",
                other.len(),
                other[0]
            )
        };
        loaded.skip(label, reason);
    }
}

/// A parsed document: [`parse`] has held it to [`crate::result::validate`]'s rules.
fn accept(label: String, doc: RunResult, loaded: &mut Loaded) {
    loaded.results.push(Source { label, doc });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures;

    fn doc(host: &str) -> RunResult {
        fixtures::run(host, "GPU A", vec![fixtures::prefill(64, &[0.01, 0.011])])
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, text).unwrap();
        path
    }

    fn reasons(loaded: &Loaded) -> Vec<String> {
        loaded.skipped_lines()
    }

    #[test]
    fn directories_are_read_recursively_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(
            d,
            "b/n2.json",
            &serde_json::to_string_pretty(&doc("n2")).unwrap(),
        );
        write(
            d,
            "a/deep/n1.json",
            &serde_json::to_string(&doc("n1")).unwrap(),
        );
        write(d, "README.md", "# not a result");
        write(d, ".hidden/n9.json", "junk");
        let loaded = load_paths(&[d.to_path_buf()]);
        let hosts: Vec<&str> = loaded
            .results
            .iter()
            .map(|s| s.doc.node.hostname.as_str())
            .collect();
        assert_eq!(hosts, ["n1", "n2"]);
        assert!(loaded.skipped.is_empty(), "{:?}", loaded.skipped);
    }

    #[test]
    fn json_lines_are_read_line_by_line_with_log_text_noted() {
        let dir = tempfile::tempdir().unwrap();
        let lines = format!(
            "tokbench: llvmpipe, timing: GpuTimestamps\n{}\n\n{}\n{{\"schema_version\": 1}}\n",
            serde_json::to_string(&doc("n1")).unwrap(),
            serde_json::to_string(&doc("n2")).unwrap()
        );
        // Both by name (.jsonl) and by content (a .log file).
        for name in ["fleet.jsonl", "fleet.log"] {
            let path = write(dir.path(), name, &lines);
            let loaded = load_paths(std::slice::from_ref(&path));
            let labels: Vec<String> = loaded.results.iter().map(|s| s.label.clone()).collect();
            let p = path.display().to_string();
            assert_eq!(labels, [format!("{p}:2"), format!("{p}:4")]);
            let r = reasons(&loaded);
            assert_eq!(r.len(), 2, "{r:?}");
            assert!(
                r[0].starts_with(&format!("{p}:5: not a valid tokbench result")),
                "{r:?}"
            );
            assert_eq!(
                r[1],
                format!("{p}: 1 line(s) that are not JSON documents ignored (first: line 1)")
            );
        }
    }

    #[test]
    fn every_kind_of_bad_input_is_named_with_its_reason() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let good = serde_json::to_string_pretty(&doc("n1")).unwrap();
        let mut other_version = serde_json::to_value(doc("n1")).unwrap();
        other_version["schema_version"] = 7.into();
        let mut negative = doc("n1");
        negative.workloads[0].stats.samples_s[1] = -0.5;
        let mut negative_rate = doc("n1");
        negative_rate.workloads[0].tokens_per_s = Some(-3.0);
        // Zero passes the document's own checks, but no measurement takes no time.
        let mut zero = doc("n1");
        zero.workloads[0].stats.samples_s[0] = 0.0;
        let nan = good.replacen("\"median_s\": ", "\"median_s\": NaN, \"x\": ", 1);
        let cases = [
            (
                "truncated.json",
                good[..good.len() / 2].to_string(),
                "not valid JSON: EOF",
            ),
            (
                "other.json",
                r#"{"name": "x"}"#.to_string(),
                "not a tokbench result (no schema_version)",
            ),
            (
                "v7.json",
                other_version.to_string(),
                "schema_version 7 is not supported",
            ),
            ("nan.json", nan, "not valid JSON"),
            (
                "negative.json",
                serde_json::to_string(&negative).unwrap(),
                "workloads[0].stats.samples_s[1] = -0.5 is negative",
            ),
            (
                "rate.json",
                serde_json::to_string(&negative_rate).unwrap(),
                "workloads[0].tokens_per_s = -3.0 is negative",
            ),
            (
                "zero.json",
                serde_json::to_string(&zero).unwrap(),
                "workloads[0].stats.samples_s[0] = 0 must be positive (workload prefill-tiny-f32-b1-p64)",
            ),
            ("empty.json", String::new(), "empty file"),
        ];
        for (name, text, reason) in &cases {
            write(d, name, text);
            let loaded = load_paths(&[d.join(name)]);
            assert!(loaded.results.is_empty(), "{name}");
            let r = reasons(&loaded);
            let expected = format!("{}: {reason}", d.join(name).display());
            assert!(r.len() == 1 && r[0].starts_with(&expected), "{name}: {r:?}");
        }
        let missing = load_paths(&[d.join("missing.json")]);
        assert!(
            missing.skipped[0].reason.starts_with("cannot read: "),
            "{missing:?}"
        );
        let empty = d.join("empty-dir");
        std::fs::create_dir(&empty).unwrap();
        let loaded = load_paths(std::slice::from_ref(&empty));
        assert_eq!(
            reasons(&loaded),
            [format!(
                "{}: directory holds no .json, .jsonl or .ndjson files",
                empty.display()
            )]
        );
    }

    #[test]
    fn load_one_wants_exactly_one_result() {
        let dir = tempfile::tempdir().unwrap();
        let one = write(
            dir.path(),
            "one.json",
            &serde_json::to_string(&doc("n1")).unwrap(),
        );
        assert_eq!(
            load_one(&one, "--baseline").unwrap().doc.node.hostname,
            "n1"
        );
        let two = write(
            dir.path(),
            "two.jsonl",
            &format!(
                "{}\n{}\n",
                serde_json::to_string(&doc("a")).unwrap(),
                serde_json::to_string(&doc("b")).unwrap()
            ),
        );
        let err = load_one(&two, "--current").unwrap_err().to_string();
        assert!(err.contains("holds 2 results"), "{err}");
        let err = load_one(&dir.path().join("nope.json"), "--baseline")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("--baseline ") && err.contains("cannot read"),
            "{err}"
        );
    }
}

//! Writing and reading result documents.
//!
//! A run reserves its file before any work starts (so an unwritable destination fails early),
//! then rewrites it atomically after every workload: a crash or Ctrl-C loses nothing already
//! measured, and a reader never sees half a document. An existing file is never overwritten.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::{RunResult, SCHEMA_VERSION, WorkloadResult, validate};
use crate::InputError;

/// Where a run's result goes.
#[derive(Debug, Clone)]
pub enum Destination {
    /// `<results_dir>/<hostname>/<UTC time>-<adapter slug>.json`, with `-2`, `-3`, ... appended
    /// when two runs start in the same second.
    Generated {
        /// The results directory (`results/` by default).
        results_dir: PathBuf,
    },
    /// Exactly this path (`--out`); it must not exist yet.
    Exact(PathBuf),
}

impl Destination {
    /// Checks, before any device is opened, that a result can be written here: an exact path
    /// must not exist, and the directory must be creatable and take a file of `probe_bytes`.
    /// [`ResultWriter::create`] still reserves the file itself; this only moves the failure of
    /// an unusable destination (read-only, full, existing) ahead of any work.
    pub fn preflight(&self, hostname: &str, probe_bytes: usize) -> anyhow::Result<()> {
        let dir = match self {
            Self::Exact(path) => {
                refuse_existing(path)?;
                parent_dir(path)
            }
            Self::Generated { results_dir } => results_dir.join(slug(hostname)),
        };
        ensure_dir(&dir)?;
        let mut probe = tempfile::Builder::new()
            .prefix(".tokbench-")
            .suffix(".tmp")
            .tempfile_in(&dir)
            .map_err(|e| InputError::new(format!("{}: cannot write here: {e}", dir.display())))?;
        probe
            .write_all(&vec![b' '; probe_bytes])
            .and_then(|()| probe.as_file().sync_all())
            .map_err(|e| {
                InputError::new(format!(
                    "{}: cannot write the result here: {e}",
                    dir.display()
                ))
            })?;
        Ok(())
    }
}

/// Refuses an `--out` path that exists: tokbench never overwrites a result.
fn refuse_existing(path: &Path) -> Result<(), InputError> {
    if path.exists() {
        return Err(InputError::new(format!(
            "--out {}: file already exists; tokbench never overwrites a result, \
             so choose another path or remove it",
            path.display()
        )));
    }
    Ok(())
}

/// Owns a run's result file while the run goes on.
#[derive(Debug)]
pub struct ResultWriter {
    path: PathBuf,
    doc: RunResult,
}

impl ResultWriter {
    /// Reserves the destination and writes `doc` (normally with no workloads yet).
    pub fn create(destination: &Destination, doc: RunResult) -> anyhow::Result<Self> {
        let path = match destination {
            Destination::Exact(path) => {
                refuse_existing(path)?;
                let dir = parent_dir(path);
                ensure_dir(&dir)?;
                reserve(path, &doc)?.ok_or_else(|| {
                    InputError::new(format!("--out {}: file already exists", path.display()))
                })?;
                path.clone()
            }
            Destination::Generated { results_dir } => {
                let dir = results_dir.join(slug(&doc.node.hostname));
                ensure_dir(&dir)?;
                let stem = format!(
                    "{}-{}",
                    doc.started_at.format("%Y%m%dT%H%M%SZ"),
                    slug(&doc.adapter.name)
                );
                let mut reserved = None;
                for attempt in 1..=1000 {
                    let name = if attempt == 1 {
                        format!("{stem}.json")
                    } else {
                        format!("{stem}-{attempt}.json")
                    };
                    let candidate = dir.join(name);
                    if reserve(&candidate, &doc)?.is_some() {
                        reserved = Some(candidate);
                        break;
                    }
                }
                reserved
                    .with_context(|| format!("no free result file name in {}", dir.display()))?
            }
        };
        Ok(Self { path, doc })
    }

    /// Appends a finished workload and rewrites the file.
    pub fn push(&mut self, workload: WorkloadResult) -> anyhow::Result<()> {
        self.doc.workloads.push(workload);
        self.rewrite()
    }

    /// Changes the document with `edit` and rewrites the file.
    pub fn update(&mut self, edit: impl FnOnce(&mut RunResult)) -> anyhow::Result<()> {
        edit(&mut self.doc);
        self.rewrite()
    }

    /// The document as written so far.
    pub fn document(&self) -> &RunResult {
        &self.doc
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn rewrite(&self) -> anyhow::Result<()> {
        replace_atomically(&self.path, &document_bytes(&self.doc)?)
            .with_context(|| format!("replacing {}", self.path.display()))
    }
}

/// The document as written: pretty JSON and a final new line.
fn document_bytes(doc: &RunResult) -> anyhow::Result<Vec<u8>> {
    let mut json = serde_json::to_vec_pretty(doc).context("serialising the result")?;
    json.push(b'\n');
    Ok(json)
}

/// Replaces `path` with `bytes` atomically: written to a temporary file beside it, flushed to
/// disk, then renamed over it, so a reader sees the old file or the new one, never half of
/// one. Results and reports (`--out`) are written through here.
pub fn replace_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    temp_with(&parent_dir(path), bytes)?
        .persist(path)
        .map(|_| ())
        .map_err(|e| e.error)
}

/// A temporary file in `dir` holding `bytes`, flushed to disk.
fn temp_with(dir: &Path, bytes: &[u8]) -> std::io::Result<tempfile::NamedTempFile> {
    let mut tmp = tempfile::Builder::new()
        .prefix(".tokbench-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    Ok(tmp)
}

/// Writes `doc` to `path` only if no file is there; `Ok(None)` if one is.
fn reserve(path: &Path, doc: &RunResult) -> anyhow::Result<Option<()>> {
    // Failing here means the destination is unusable (read-only, full): bad input, found
    // before any measurement.
    let dir = parent_dir(path);
    let tmp = temp_with(&dir, &document_bytes(doc)?).map_err(|e| {
        InputError::new(format!(
            "{}: cannot write the result here ({}): {e}",
            path.display(),
            dir.display()
        ))
    })?;
    match tmp.persist_noclobber(path) {
        Ok(_) => Ok(Some(())),
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => Ok(None),
        Err(e) => {
            Err(InputError::new(format!("{}: cannot write: {}", path.display(), e.error)).into())
        }
    }
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn ensure_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| {
        InputError::new(format!(
            "{}: cannot create the results directory: {e}",
            dir.display()
        ))
        .into()
    })
}

/// Lowercase letters, digits and single dashes: safe in any file name.
pub fn slug(text: &str) -> String {
    let mut out = String::new();
    for ch in text.chars() {
        if ch.is_ascii_alphanumeric() {
            out.push(ch.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let trimmed = out.trim_matches('-');
    if trimmed.is_empty() {
        "unknown".into()
    } else {
        trimmed.chars().take(60).collect()
    }
}

/// Largest result file [`load`] reads: a real result is a few MiB at most (raw samples
/// included); anything far larger is not one.
pub const DEFAULT_MAX_BYTES: u64 = 64 << 20;

/// Reads a result document, refusing anything that is not a tokbench result of this schema
/// version, or a file larger than [`DEFAULT_MAX_BYTES`]. Every error names the file.
pub fn load(path: &Path) -> anyhow::Result<RunResult> {
    load_limited(path, DEFAULT_MAX_BYTES)
}

/// [`load`] with a size limit in bytes.
pub fn load_limited(path: &Path, max_bytes: u64) -> anyhow::Result<RunResult> {
    let named =
        |e: String| -> anyhow::Error { InputError::new(format!("{}: {e}", path.display())).into() };
    let text = read_limited(path, max_bytes).map_err(named)?;
    parse(&text).map_err(named)
}

/// The text of `path`, refused when larger than `max_bytes` (checked before reading, so a huge
/// file costs nothing). The error is the reason alone; callers name the file their own way.
pub fn read_limited(path: &Path, max_bytes: u64) -> Result<String, String> {
    let size = std::fs::metadata(path)
        .map_err(|e| format!("cannot read: {e}"))?
        .len();
    if size > max_bytes {
        return Err(format!(
            "{size} bytes is larger than the {max_bytes}-byte limit for this file"
        ));
    }
    std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))
}

/// Parses a result document from JSON text and checks its figures ([`validate::check`]). Never
/// panics, whatever the input: deeply nested input stops at serde_json's recursion limit.
pub fn parse(text: &str) -> Result<RunResult, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    match value.get("schema_version").and_then(|v| v.as_u64()) {
        Some(v) if v == u64::from(SCHEMA_VERSION) => {}
        Some(v) => {
            return Err(format!(
                "schema_version {v} is not supported (this tokbench reads {SCHEMA_VERSION})"
            ));
        }
        None => return Err("not a tokbench result (no schema_version)".into()),
    }
    let doc: RunResult =
        serde_json::from_value(value).map_err(|e| format!("not a valid tokbench result: {e}"))?;
    validate::check(&doc)?;
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_file_safe() {
        assert_eq!(
            slug("llvmpipe (LLVM 15.0.6, 256 bits)"),
            "llvmpipe-llvm-15-0-6-256-bits"
        );
        assert_eq!(slug("<script>"), "script");
        assert_eq!(slug("///"), "unknown");
    }

    #[test]
    fn bad_figures_are_named_by_their_path() {
        let doc = crate::result::fixtures::run_with_samples("n", &[1.0, 2.0]);
        let mut v = serde_json::to_value(&doc).unwrap();
        v["workloads"][0]["stats"]["samples_s"][1] = (-2.0).into();
        let err = parse(&v.to_string()).unwrap_err();
        assert!(
            err.contains("workloads[0].stats.samples_s[1] = -2.0 is negative"),
            "{err}"
        );
        let text = serde_json::to_string(&doc).unwrap().replacen(
            "\"flops\":",
            "\"flops\":1e999,\"x\":",
            1,
        );
        assert!(parse(&text).is_err());
        let mut v = serde_json::to_value(&doc).unwrap();
        v["workloads"][0]["stats"]["samples_s"] = serde_json::json!([]);
        assert!(parse(&v.to_string()).unwrap_err().contains("no samples"));
    }

    #[test]
    fn deep_nesting_and_huge_files_are_refused_without_panicking() {
        let deep = "[".repeat(100_000) + &"]".repeat(100_000);
        assert!(parse(&deep).unwrap_err().contains("not valid JSON"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.json");
        std::fs::write(&path, vec![b' '; 2048]).unwrap();
        let err = load_limited(&path, 1024).unwrap_err().to_string();
        assert!(err.contains("big.json") && err.contains("limit"), "{err}");
    }

    mod fuzz {
        use proptest::prelude::*;

        use super::super::parse;
        use crate::result::fixtures::run_with_samples;

        fn valid_text() -> String {
            serde_json::to_string(&run_with_samples("fuzz", &[1e-3, 2e-3, 3e-3])).unwrap()
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

            /// Arbitrary bytes never make the loader panic.
            #[test]
            fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
                let _ = parse(&String::from_utf8_lossy(&bytes));
            }

            /// A valid result cut short, or with bytes overwritten, never makes it panic.
            #[test]
            fn mutated_results(cut in 0usize..4096, at in 0usize..4096, byte in any::<u8>()) {
                let text = valid_text();
                let _ = parse(&text[..cut.min(text.len())]);
                let mut bytes = text.into_bytes();
                let i = at % bytes.len();
                bytes[i] = byte;
                let _ = parse(&String::from_utf8_lossy(&bytes));
            }

            /// Any field replaced with any JSON value either still parses (and then every figure
            /// is finite and non-negative) or is refused with a reason.
            #[test]
            fn replaced_fields(pick in 0usize..10_000, replacement in prop_oneof![
                Just(serde_json::json!(null)),
                Just(serde_json::json!(-1)),
                Just(serde_json::json!(1e308)),
                Just(serde_json::json!("text")),
                Just(serde_json::json!([])),
                Just(serde_json::json!({})),
                Just(serde_json::json!(true)),
            ]) {
                let mut v: serde_json::Value = serde_json::from_str(&valid_text()).unwrap();
                let mut leaves = Vec::new();
                collect_pointers(&v, String::new(), &mut leaves);
                let target = &leaves[pick % leaves.len()];
                *v.pointer_mut(target).unwrap() = replacement;
                match parse(&v.to_string()) {
                    Ok(doc) => prop_assert!(doc.workloads.iter().all(|w| w.stats.median_s >= 0.0 && w.flops >= 0.0)),
                    Err(reason) => prop_assert!(!reason.is_empty()),
                }
            }
        }

        fn collect_pointers(v: &serde_json::Value, at: String, out: &mut Vec<String>) {
            match v {
                serde_json::Value::Object(m) => {
                    for (k, x) in m {
                        collect_pointers(x, format!("{at}/{k}"), out);
                    }
                }
                serde_json::Value::Array(a) => {
                    for (i, x) in a.iter().enumerate() {
                        collect_pointers(x, format!("{at}/{i}"), out);
                    }
                }
                _ => {}
            }
            if !at.is_empty() {
                out.push(at);
            }
        }
    }
}

//! Writing and reading result documents.
//!
//! A run reserves its file before any work starts (so an unwritable destination fails early),
//! then rewrites it atomically after every workload: a crash or Ctrl-C loses nothing already
//! measured, and a reader never sees half a document. An existing file is never overwritten.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::{RunResult, SCHEMA_VERSION, WorkloadResult};
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
                if path.exists() {
                    return Err(InputError::new(format!(
                        "--out {}: file already exists; tokbench never overwrites a result, \
                         so choose another path or remove it",
                        path.display()
                    ))
                    .into());
                }
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
                    compact_utc(&doc.started_at),
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
        let tmp = write_temp(&parent_dir(&self.path), &self.doc)?;
        tmp.persist(&self.path)
            .with_context(|| format!("replacing {}", self.path.display()))?;
        Ok(())
    }
}

/// Writes `doc` to `path` only if no file is there; `Ok(None)` if one is.
fn reserve(path: &Path, doc: &RunResult) -> anyhow::Result<Option<()>> {
    let tmp = write_temp(&parent_dir(path), doc)?;
    match tmp.persist_noclobber(path) {
        Ok(_) => Ok(Some(())),
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => Ok(None),
        Err(e) => {
            Err(InputError::new(format!("{}: cannot write: {}", path.display(), e.error)).into())
        }
    }
}

fn write_temp(dir: &Path, doc: &RunResult) -> anyhow::Result<tempfile::NamedTempFile> {
    let mut tmp = tempfile::Builder::new()
        .prefix(".tokbench-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| InputError::new(format!("{}: cannot write here: {e}", dir.display())))?;
    let json = serde_json::to_vec_pretty(doc).context("serialising the result")?;
    tmp.write_all(&json)
        .and_then(|()| tmp.write_all(b"\n"))
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("writing a result in {}", dir.display()))?;
    Ok(tmp)
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

/// "2026-11-21T21:53:07.123Z" -> "20261121T215307Z".
fn compact_utc(rfc3339: &str) -> String {
    let digits_and_t: String = rfc3339
        .chars()
        .take_while(|c| *c != '.' && *c != 'Z' && *c != '+')
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .collect();
    format!("{digits_and_t}Z")
}

/// Reads a result document, refusing anything that is not a tokbench result of this schema
/// version. Every error names the file.
pub fn load(path: &Path) -> anyhow::Result<RunResult> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| InputError::new(format!("{}: cannot read: {e}", path.display())))?;
    parse(&text).map_err(|e| InputError::new(format!("{}: {e}", path.display())).into())
}

/// Parses a result document from JSON text.
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
    serde_json::from_value(value).map_err(|e| format!("not a valid tokbench result: {e}"))
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
    fn compact_time() {
        assert_eq!(compact_utc("2026-11-21T21:53:07.123Z"), "20261121T215307Z");
        assert_eq!(compact_utc("2026-11-21T21:53:07Z"), "20261121T215307Z");
    }
}

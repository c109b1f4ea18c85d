//! The tuning cache: winners per adapter, driver, weight type, shape class and tokbench build,
//! in one JSON file under the user's cache directory. A missing or unreadable cache only means
//! tuning again; it never stops a run.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::{Effort, Target};
use crate::gpu::GpuContext;
use crate::kernels::KernelConfig;
use crate::model::ModelShape;

/// What a tuned configuration is valid for. Kernel code changes with the build, so the key
/// names the tokbench version and commit too.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TuneKey(String);

impl TuneKey {
    /// The key for `target` (its shape, weight and KV formats and the run's passes: tuning is at the
    /// run's shapes) on this device, tuned over the tiers `math` allows.
    pub fn new(
        ctx: &GpuContext,
        target: &Target,
        math: tokbench_core::kernel_config::MathRequest,
    ) -> Self {
        let info = &ctx.info;
        let tool = crate::runner::tool_info();
        Self(format!(
            "{} [{:04x}:{:04x}] {:?} {} {} | {} | kv {} | math {} | {} | {} | tokbench {} {}",
            info.name,
            info.vendor,
            info.device,
            info.backend,
            info.driver,
            info.driver_info,
            target.dtype.name(),
            target.kv.name(),
            math.name(),
            shape_class(&target.shape),
            target.describe_passes(),
            tool.version,
            tool.git_sha.as_deref().unwrap_or("unknown"),
        ))
    }

    /// The key as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Shapes whose kernels behave alike: widths rounded up to powers of two, and the head
/// layout exactly.
fn shape_class(s: &ModelShape) -> String {
    format!(
        "d{}-f{}-hd{}-g{}",
        s.d_model.next_power_of_two(),
        s.d_ff.next_power_of_two(),
        s.head_dim,
        s.n_heads / s.n_kv_heads
    )
}

/// One cached winner.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CacheEntry {
    /// The configuration that won.
    pub config: KernelConfig,
    /// How hard tuning tried.
    pub effort: Effort,
    /// When, RFC 3339 UTC.
    pub tuned_at: String,
}

/// The cache file.
#[derive(Debug)]
pub struct TuneCache {
    path: PathBuf,
    entries: BTreeMap<String, CacheEntry>,
}

impl TuneCache {
    /// `TOKBENCH_TUNE_CACHE`, else `$XDG_CACHE_HOME/tokbench/tune.json`, else
    /// `~/.cache/tokbench/tune.json`.
    pub fn default_path() -> Option<PathBuf> {
        let env = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        env("TOKBENCH_TUNE_CACHE")
            .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("tokbench/tune.json")))
            .or_else(|| env("HOME").map(|h| h.join(".cache/tokbench/tune.json")))
    }

    /// Reads the cache at `path`; a missing file is an empty cache. A file that cannot be
    /// read or parsed is also treated as empty, and the returned warning says why.
    pub fn open(path: &Path) -> (Self, Option<String>) {
        let empty = |warning| {
            (
                Self {
                    path: path.to_path_buf(),
                    entries: BTreeMap::new(),
                },
                warning,
            )
        };
        match std::fs::read_to_string(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => empty(None),
            Err(e) => empty(Some(format!(
                "{}: cannot read the tuning cache ({e}); tuning again",
                path.display()
            ))),
            Ok(text) => match serde_json::from_str(&text) {
                Ok(entries) => (
                    Self {
                        path: path.to_path_buf(),
                        entries,
                    },
                    None,
                ),
                Err(e) => empty(Some(format!(
                    "{}: the tuning cache is not valid ({e}); tuning again and rewriting it",
                    path.display()
                ))),
            },
        }
    }

    /// The cached configuration for `key`.
    pub fn get(&self, key: &TuneKey) -> Option<&CacheEntry> {
        self.entries.get(key.as_str())
    }

    /// Records a winner.
    pub fn insert(&mut self, key: &TuneKey, entry: CacheEntry) {
        self.entries.insert(key.as_str().to_string(), entry);
    }

    /// Where the cache lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the cache atomically (a temporary file renamed over it).
    pub fn save(&self) -> anyhow::Result<()> {
        let dir = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)
            .with_context(|| format!("writing in {}", dir.display()))?;
        tmp.write_all(serde_json::to_string_pretty(&self.entries)?.as_bytes())?;
        tmp.persist(&self.path)
            .with_context(|| format!("replacing {}", self.path.display()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::test_context;
    use crate::kernels::{KvDtype, WeightDtype};
    use crate::model::Pass;
    use crate::model::presets::find;

    #[test]
    fn entries_survive_a_round_trip_and_keys_separate_shapes_and_types() {
        let ctx = test_context();
        let tiny = find("tiny").unwrap().shape;
        let big = find("llama3-8b-shape").unwrap().shape;
        use tokbench_core::kernel_config::MathRequest::{Auto, Coopmat};
        let decode = |len| Pass::decode(1, len);
        let target = |shape, dtype, depth| {
            Target::new(
                &ctx.facts(),
                shape,
                (dtype, KvDtype::F32),
                vec![decode(depth)],
                None,
            )
        };
        let k1 = TuneKey::new(ctx, &target(tiny, WeightDtype::F32, 64), Auto);
        assert_ne!(
            k1,
            TuneKey::new(ctx, &target(big, WeightDtype::F32, 64), Auto)
        );
        assert_ne!(
            k1,
            TuneKey::new(ctx, &target(tiny, WeightDtype::F16, 64), Auto)
        );
        assert_ne!(
            k1,
            TuneKey::new(ctx, &target(tiny, WeightDtype::F32, 512), Auto),
            "another depth is another tune"
        );
        // A cooperative-only tune is not an auto one.
        assert_ne!(
            TuneKey::new(ctx, &target(tiny, WeightDtype::F16, 64), Auto),
            TuneKey::new(ctx, &target(tiny, WeightDtype::F16, 64), Coopmat)
        );
        assert!(k1.as_str().contains("tokbench"));

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/tune.json");
        let (mut cache, warning) = TuneCache::open(&path);
        assert!(warning.is_none() && cache.get(&k1).is_none());
        let config = KernelConfig::default_for(ctx.traits());
        cache.insert(
            &k1,
            CacheEntry {
                config: config.clone(),
                effort: Effort::Quick,
                tuned_at: "now".into(),
            },
        );
        cache.save().unwrap();
        let (again, _) = TuneCache::open(&path);
        assert_eq!(again.get(&k1).unwrap().config, config);
    }

    #[test]
    fn a_corrupt_cache_is_a_warning_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tune.json");
        std::fs::write(&path, "{ not json").unwrap();
        let (cache, warning) = TuneCache::open(&path);
        assert!(warning.unwrap().contains("not valid"));
        assert!(cache.entries.is_empty());
    }
}

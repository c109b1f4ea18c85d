//! What makes two results comparable: the workload definition, the node, the hardware group and
//! the hardware fingerprint.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::dtype::{KvDtype, WeightDtype};
use crate::model::{ModelShape, Phase};
use crate::result::{RunResult, WorkloadKind, WorkloadResult};

/// Everything that defines what a workload measured. Two results with equal keys did the same
/// work; `id` alone is not enough (a custom shape keeps its id when its dimensions change).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct WorkloadKey {
    /// The workload id, for example "decode-tiny-f32-b1-d512".
    pub id: String,
    /// "prefill", "decode", "probe-fma", "matmul", ...
    pub kind: WorkloadKind,
    /// "prefill" or "decode"; null for kernel and probe workloads.
    pub phase: Option<Phase>,
    /// Preset name ("custom" for a shape from flags or a file).
    pub preset: Option<String>,
    /// The model shape.
    pub model: Option<ModelShape>,
    /// Weight element type.
    pub dtype: WeightDtype,
    /// KV cache format of a token workload (f32 for documents from before `--kv-dtype`);
    /// null for kernels and probes. Runs with different caches did different work.
    pub kv_dtype: Option<KvDtype>,
    /// Sequences per pass.
    pub batch: Option<u32>,
    /// Prefill prompt length.
    pub prompt_len: Option<u32>,
    /// Decode KV depth.
    pub depth: Option<u32>,
    /// Layers each pass ran through.
    pub layers_run: Option<u32>,
    /// Named problem dimensions (kernel workloads).
    pub shape: BTreeMap<String, u64>,
}

impl WorkloadKey {
    /// The definition of `w`.
    pub fn of(w: &WorkloadResult) -> Self {
        Self {
            id: w.id.clone(),
            kind: w.kind,
            phase: w.phase,
            preset: w.preset.clone(),
            model: w.model,
            dtype: w.dtype,
            kv_dtype: w.kv_format(),
            batch: w.batch,
            prompt_len: w.prompt_len,
            depth: w.depth,
            layers_run: w.layers_run,
            shape: w.shape.clone(),
        }
    }

    /// True for prefill and decode: the workloads that make tokens.
    pub fn is_token_workload(&self) -> bool {
        self.phase.is_some()
    }

    /// Order of groups in reports: prefill before decode, then by size.
    pub(crate) fn sort_key(&self) -> impl Ord + '_ {
        let phase_rank = match self.phase {
            Some(Phase::Prefill) => 0,
            Some(Phase::Decode) => 1,
            None => 2,
        };
        (
            phase_rank,
            self.preset.as_deref(),
            self.dtype.name(),
            self.kv_dtype.map(KvDtype::name),
            self.batch,
            self.prompt_len,
            self.depth,
            self.layers_run,
            self.id.as_str(),
        )
    }

    /// One line for people: "prefill · tiny · f32 · batch 1 · prompt 512 · 2 layers" (with
    /// "KV f16" or "KV q8_0" after the weight type for a cache other than f32).
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        parts.push(self.phase.map_or(self.kind.name(), Phase::name).to_string());
        if let Some(p) = &self.preset {
            parts.push(p.clone());
        }
        parts.push(self.dtype.name().to_string());
        // f32, the only cache before `--kv-dtype`, goes unsaid: older reports read the same.
        if let Some(kv) = self.kv_dtype.filter(|&k| k != KvDtype::F32) {
            parts.push(format!("KV {}", kv.name()));
        }
        if let Some(b) = self.batch {
            parts.push(format!("batch {b}"));
        }
        if let Some(p) = self.prompt_len {
            parts.push(format!("prompt {p}"));
        }
        if let Some(d) = self.depth {
            parts.push(format!("depth {d}"));
        }
        if let (Some(l), Some(m)) = (self.layers_run, self.model) {
            parts.push(format!("{l} of {} layers", m.n_layers));
        }
        parts.join(" · ")
    }

    /// The fields in which `other` differs from `self`, for a one-line reason.
    pub fn differences(&self, other: &Self) -> Vec<String> {
        let mut out = Vec::new();
        let mut field = |name: &str, a: String, b: String| {
            if a != b {
                out.push(format!("{name} {b} instead of {a}"));
            }
        };
        let opt = |v: Option<u32>| v.map_or("null".to_string(), |x| x.to_string());
        let text = |v: &Option<String>| v.clone().unwrap_or_else(|| "null".into());
        let phase = |p: Option<Phase>| p.map_or("null", Phase::name).to_string();
        field("kind", self.kind.name().into(), other.kind.name().into());
        field("phase", phase(self.phase), phase(other.phase));
        field("preset", text(&self.preset), text(&other.preset));
        field("dtype", self.dtype.name().into(), other.dtype.name().into());
        let kv = |k: Option<KvDtype>| k.map_or("null", KvDtype::name).to_string();
        field("kv_dtype", kv(self.kv_dtype), kv(other.kv_dtype));
        field("batch", opt(self.batch), opt(other.batch));
        field("prompt_len", opt(self.prompt_len), opt(other.prompt_len));
        field("depth", opt(self.depth), opt(other.depth));
        field("layers_run", opt(self.layers_run), opt(other.layers_run));
        field(
            "model",
            format!("{:?}", self.model),
            format!("{:?}", other.model),
        );
        field(
            "shape",
            format!("{:?}", self.shape),
            format!("{:?}", other.shape),
        );
        out
    }
}

/// The node a result came from, as people name it: the host name, plus the scheduler's node
/// name when it differs (a Kubernetes pod's host name is the pod's).
pub fn node_label(doc: &RunResult) -> String {
    let host = &doc.node.hostname;
    match doc
        .node
        .placement
        .as_ref()
        .and_then(|p| p.node_name.as_deref())
    {
        Some(node) if node != host => format!("{host} ({node})"),
        _ => host.clone(),
    }
}

/// Nodes with equal hardware groups run the same adapter with the same driver: the fleet view
/// sets each against the others.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct HardwareGroup {
    /// Adapter name.
    pub adapter: String,
    /// Driver name.
    pub driver: String,
    /// Driver version details.
    pub driver_info: String,
}

impl HardwareGroup {
    /// The group of the node that wrote `doc`.
    pub fn of(doc: &RunResult) -> Self {
        Self {
            adapter: doc.adapter.name.clone(),
            driver: doc.adapter.driver.clone(),
            driver_info: doc.adapter.driver_info.clone(),
        }
    }

    /// "adapter · driver driver_info".
    pub fn label(&self) -> String {
        format!("{} · {} {}", self.adapter, self.driver, self.driver_info)
    }
}

/// The hardware a result was measured on, as far as `check` needs it to be the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    fields: Vec<(&'static str, String)>,
}

impl Fingerprint {
    /// Adapter name, vendor and device ids, backend, driver and driver details; CPU model and
    /// logical cores.
    pub fn of(doc: &RunResult) -> Self {
        let a = &doc.adapter;
        Self {
            fields: vec![
                ("adapter.name", a.name.clone()),
                ("adapter.vendor_id", format!("{:#06x}", a.vendor_id)),
                ("adapter.device_id", format!("{:#06x}", a.device_id)),
                ("adapter.backend", a.backend.clone()),
                ("adapter.driver", a.driver.clone()),
                ("adapter.driver_info", a.driver_info.clone()),
                ("node.cpu_brand", doc.node.cpu_brand.clone()),
                ("node.cpu_cores", doc.node.cpu_cores.to_string()),
            ],
        }
    }

    /// A short stable digest of the fields, "fnv1a64:" and 16 hex digits: two results with the
    /// same digest ran on the same hardware and driver (FNV-1a: stable across builds and
    /// platforms, unlike the standard library's hasher).
    pub fn digest(&self) -> String {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for (name, value) in &self.fields {
            for byte in name.bytes().chain([0]).chain(value.bytes()).chain([0]) {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        format!("fnv1a64:{hash:016x}")
    }

    /// One entry per field that differs: "adapter.name: \"A\" (baseline) vs \"B\" (current)".
    pub fn differences(&self, current: &Self) -> Vec<String> {
        self.fields
            .iter()
            .zip(&current.fields)
            .filter(|(a, b)| a.1 != b.1)
            .map(|(a, b)| format!("{}: {:?} (baseline) vs {:?} (current)", a.0, a.1, b.1))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures;

    #[test]
    fn definitions_name_what_differs() {
        let a = WorkloadKey::of(&fixtures::prefill(512, &[0.1]));
        let mut w = fixtures::prefill(512, &[0.1]);
        w.layers_run = Some(1);
        let b = WorkloadKey::of(&w);
        assert_ne!(a, b);
        assert_eq!(a.differences(&b), ["layers_run 1 instead of 2"]);
        assert_eq!(
            a.describe(),
            "prefill · tiny · f32 · batch 1 · prompt 512 · 2 of 2 layers"
        );
    }

    /// Token workloads with different KV caches are different workloads; a document from
    /// before `--kv-dtype` reads as an f32 cache.
    #[test]
    fn kv_formats_are_kept_apart() {
        let old = fixtures::prefill(512, &[0.1]);
        assert_eq!(old.kv_dtype, None);
        let mut f32_kv = old.clone();
        f32_kv.kv_dtype = Some(KvDtype::F32);
        assert_eq!(WorkloadKey::of(&old), WorkloadKey::of(&f32_kv));
        let mut q8 = old.clone();
        q8.kv_dtype = Some(KvDtype::Q8_0);
        let (a, b) = (WorkloadKey::of(&old), WorkloadKey::of(&q8));
        assert_ne!(a, b);
        assert_eq!(a.differences(&b), ["kv_dtype q8_0 instead of f32"]);
        assert!(b.describe().contains("f32 · KV q8_0 ·"), "{}", b.describe());
    }

    #[test]
    fn node_label_adds_the_scheduler_node_name() {
        let mut doc = fixtures::node("pod-7", "GPU A");
        assert_eq!(node_label(&doc), "pod-7");
        doc.node.placement = Some(crate::result::Placement {
            scheduler: "kubernetes".into(),
            job_id: None,
            node_name: Some("gpu-node-3".into()),
            task_id: Some("7".into()),
            pod_name: Some("pod-7".into()),
            namespace: Some("bench".into()),
        });
        assert_eq!(node_label(&doc), "pod-7 (gpu-node-3)");
    }

    #[test]
    fn fingerprints_list_their_differences() {
        let a = fixtures::node("n", "GPU A");
        let mut b = a.clone();
        b.node.cpu_cores = 64;
        b.adapter.driver_info = "2.0".into();
        let d = Fingerprint::of(&a).differences(&Fingerprint::of(&b));
        assert_ne!(Fingerprint::of(&a).digest(), Fingerprint::of(&b).digest());
        assert_eq!(
            Fingerprint::of(&a).digest(),
            Fingerprint::of(&a.clone()).digest()
        );
        assert!(Fingerprint::of(&a).digest().starts_with("fnv1a64:"));
        assert_eq!(
            d,
            [
                "adapter.driver_info: \"1.0\" (baseline) vs \"2.0\" (current)",
                "node.cpu_cores: \"16\" (baseline) vs \"64\" (current)"
            ]
        );
    }
}

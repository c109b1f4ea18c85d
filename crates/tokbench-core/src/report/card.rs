//! The node card: a compact summary of what a node does with tokens, in a short fixed schema a
//! compute marketplace can ingest from many providers and rank (`tokbench compare --format
//! card`). One card per result read: the adapter, its driver and hardware fingerprint; per model
//! shape, format and phase measured, tokens/s, tokens/J, and cost and carbon per million tokens
//! under the given prices. Every figure says where it came from (measured, declared or
//! estimated) and when.
//!
//! The JSON Schema `schema/card-v1.schema.json` is generated from these types and held to them
//! by a test; regenerate it with `TOKBENCH_BLESS=1 cargo test --release -p tokbench-core card`.

use crate::model::Phase;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::compare::{CompareReport, Entry, RunRow, WorkloadComparison};
use super::cost::EnergyBasis;
use crate::result::Provenance;

/// Layout version of the card; bumped only when a field is renamed or changes meaning.
pub const CARD_VERSION: u32 = 1;

/// The document `--format card` writes: one card per node run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CardDocument {
    /// Always "tokbench-node-card".
    pub card: String,
    /// Layout version (1).
    pub version: u32,
    /// When the card was made (RFC 3339, UTC): the date of its estimated figures.
    pub generated_at: String,
    /// Currency of every cost figure; null when the prices named none (or there are no prices).
    pub currency: Option<String>,
    /// The cost model in words (energy price paid, facility power, hardware, carbon); null
    /// without prices.
    pub cost_model: Option<String>,
    /// One card per result read.
    pub nodes: Vec<NodeCard>,
}

/// One node's card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeCard {
    /// The node: host name, with the scheduler's node name when it differs.
    pub node: String,
    /// The result file the figures come from.
    pub source: String,
    /// The adapter measured.
    pub adapter: CardAdapter,
    /// Digest of the hardware fingerprint (adapter, ids, backend, driver, CPU): equal on equal
    /// hardware and driver.
    pub fingerprint: String,
    /// When the run started (RFC 3339, UTC): the date of its measured figures.
    pub measured_at: String,
    /// tokbench version that measured it.
    pub tool_version: String,
    /// Git commit of that tokbench; null when unknown.
    pub tool_git_sha: Option<String>,
    /// One entry per model shape, format and phase measured (valid results only).
    pub workloads: Vec<CardWorkload>,
    /// Serving throughput at interactivity levels; null until the node has serving
    /// measurements (`tokbench serve`), never estimated here.
    pub serving: Option<Vec<ServingPoint>>,
}

/// The adapter, as wgpu reported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CardAdapter {
    /// Adapter name.
    pub name: String,
    /// PCI vendor id.
    pub vendor_id: u32,
    /// PCI device id.
    pub device_id: u32,
    /// Discrete GPU, integrated GPU, CPU, ...
    pub device_type: String,
    /// Vulkan, Metal, Dx12, Gl.
    pub backend: String,
    /// Driver name.
    pub driver: String,
    /// Driver version details.
    pub driver_info: String,
}

/// The phase a workload measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CardPhase {
    /// Prompt processing: tokens = batch × prompt length per pass.
    Prefill,
    /// Generation at a KV depth: tokens = batch per step.
    Decode,
}

/// One model shape, format and phase on the node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CardWorkload {
    /// The workload id, for example "decode-llama3-8b-shape-f16-b1-d4096".
    pub id: String,
    /// Prefill or decode.
    pub phase: CardPhase,
    /// Model shape preset ("custom" for a shape from flags or a file); null when unknown.
    pub model_shape: Option<String>,
    /// Weight format ("f16", "q4_0", ...).
    pub dtype: String,
    /// Sequences per pass.
    pub batch: Option<u32>,
    /// Prompt length (prefill).
    pub prompt_len: Option<u32>,
    /// KV depth (decode).
    pub depth: Option<u32>,
    /// Tokens per second.
    pub tokens_per_s: Figure,
    /// Tokens per joule of the measured power's scope; null without a power figure.
    pub tokens_per_j: Option<Figure>,
    /// Facility energy per million tokens, kWh (PUE or provisioned power included).
    pub energy_kwh_per_mtok: Option<Figure>,
    /// Energy cost per million tokens.
    pub energy_cost_per_mtok: Option<Figure>,
    /// Hardware (purchase or rental) cost per million tokens.
    pub hardware_cost_per_mtok: Option<Figure>,
    /// Total cost per million tokens (the priced parts); null when a priced part is missing.
    pub cost_per_mtok: Option<Figure>,
    /// Emissions per million tokens, gCO₂e.
    pub carbon_g_per_mtok: Option<Figure>,
}

/// Serving throughput at one interactivity level (reserved: tokbench does not measure serving
/// yet, so cards carry none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServingPoint {
    /// Interactivity: tokens per second each user sees.
    pub tokens_per_s_per_user: f64,
    /// Throughput of the GPU at that interactivity, tokens per second.
    pub tokens_per_s_per_gpu: Figure,
    /// Median time to first token, seconds.
    pub ttft_p50_s: Option<Figure>,
    /// Cost per million tokens at this point.
    pub cost_per_mtok: Option<Figure>,
    /// Emissions per million tokens at this point, gCO₂e.
    pub carbon_g_per_mtok: Option<Figure>,
}

/// A figure with where it came from and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Figure {
    /// The value, in the unit its field name says.
    pub value: f64,
    /// Measured on the node, declared by someone, or estimated from other figures.
    pub provenance: FigureProvenance,
    /// The day the figure holds for (YYYY-MM-DD, UTC): the run's for measured figures, the
    /// card's for estimates.
    pub date: String,
    /// How it was obtained, in words.
    pub basis: String,
}

/// Where a figure came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FigureProvenance {
    /// Measured by this run (GPU timestamps, an energy counter, sampled power).
    Measured,
    /// Given by a person (declared watts).
    Declared,
    /// Computed from other figures and declared prices (costs, carbon, PUE-scaled energy).
    Estimated,
}

/// "2026-11-21" from "2026-11-21T23:40:02.483Z".
fn day(rfc3339: &str) -> String {
    rfc3339.chars().take(10).collect()
}

/// The cards of everything `report` compared, dated `generated_at` (RFC 3339).
pub fn cards(report: &CompareReport, generated_at: &str) -> CardDocument {
    let nodes = report
        .runs
        .iter()
        .map(|run| node_card(report, run, generated_at))
        .collect();
    CardDocument {
        card: "tokbench-node-card".into(),
        version: CARD_VERSION,
        generated_at: generated_at.to_string(),
        currency: report.prices.as_ref().and_then(|p| p.currency.clone()),
        cost_model: super::export::prices_line(report)
            .map(|l| l.trim_start_matches("cost model: ").to_string()),
        nodes,
    }
}

fn node_card(report: &CompareReport, run: &RunRow, generated_at: &str) -> NodeCard {
    let a = &run.adapter;
    let workloads = report
        .workloads
        .iter()
        .filter_map(|w| {
            let e = w.entries.iter().find(|e| e.source == run.source)?;
            Some(card_workload(report, w, e, run, generated_at))
        })
        .collect();
    NodeCard {
        node: run.node.clone(),
        source: run.source.clone(),
        adapter: CardAdapter {
            name: a.name.clone(),
            vendor_id: a.vendor_id,
            device_id: a.device_id,
            device_type: a.device_type.clone(),
            backend: a.backend.clone(),
            driver: a.driver.clone(),
            driver_info: a.driver_info.clone(),
        },
        fingerprint: run.fingerprint.clone(),
        measured_at: run.started_at.clone(),
        tool_version: run.tool.version.clone(),
        tool_git_sha: run.tool.git_sha.clone(),
        workloads,
        serving: None,
    }
}

fn card_workload(
    report: &CompareReport,
    w: &WorkloadComparison,
    e: &Entry,
    run: &RunRow,
    generated_at: &str,
) -> CardWorkload {
    let measured_day = day(&run.started_at);
    let card_day = day(generated_at);
    let figure = |value: f64, provenance: FigureProvenance, basis: String| Figure {
        value,
        provenance,
        date: match provenance {
            FigureProvenance::Estimated => card_day.clone(),
            _ => measured_day.clone(),
        },
        basis,
    };
    let power = e.power_provenance.map(|p| match p {
        Provenance::Declared => (FigureProvenance::Declared, "declared watts"),
        Provenance::MeasuredCounter => (FigureProvenance::Measured, "energy counter"),
        Provenance::MeasuredSampled => (FigureProvenance::Measured, "sampled power"),
        // A tokens/J figure without a power figure cannot exist; say so rather than guess.
        Provenance::Unavailable => (FigureProvenance::Estimated, "no power source"),
    });
    let scope = super::export::grid::json_name(e.power_scope);
    let tokens_per_j = e.tokens_per_j.zip(power).map(|(v, (prov, how))| {
        figure(
            v,
            prov,
            format!("tokens in the energy window / joules ({scope}, {how})"),
        )
    });
    let cost = e.cost.clone().unwrap_or_default();
    let terms = report.cost_terms.as_ref();
    // Energy per token is measured only when it is measured power at a PUE of 1.
    let kwh_provenance = match (terms.map(|t| t.energy_basis), power) {
        (Some(EnergyBasis::MeasuredTimesPue { pue: 1.0 }), Some((prov, _))) => prov,
        _ => FigureProvenance::Estimated,
    };
    let basis = terms.map_or_else(String::new, |t| t.energy_basis.describe());
    let estimated = |v: Option<f64>, how: String| {
        v.map(|v| figure(v, FigureProvenance::Estimated, how.clone()))
    };
    let currency = report.currency();
    let price_basis = terms
        .and_then(|t| t.energy_price_paid_kwh)
        .map(|p| format!("kWh/Mtok × {p} {currency}/kWh paid"))
        .unwrap_or_default();
    let k = &w.workload;
    CardWorkload {
        id: k.id.clone(),
        phase: if k.phase == Some(Phase::Prefill) {
            CardPhase::Prefill
        } else {
            CardPhase::Decode
        },
        model_shape: k.preset.clone(),
        dtype: k.dtype.name().into(),
        batch: k.batch,
        prompt_len: k.prompt_len,
        depth: k.depth,
        tokens_per_s: figure(
            e.tokens_per_s,
            FigureProvenance::Measured,
            "median of the raw samples".into(),
        ),
        tokens_per_j,
        energy_kwh_per_mtok: cost
            .energy_kwh_per_mtok
            .map(|v| figure(v, kwh_provenance, basis.clone())),
        energy_cost_per_mtok: estimated(cost.energy_per_mtok, price_basis),
        hardware_cost_per_mtok: estimated(
            cost.hardware_per_mtok,
            cost.hardware_basis.clone().unwrap_or_default(),
        ),
        cost_per_mtok: estimated(cost.total_per_mtok, "energy + hardware".into()),
        carbon_g_per_mtok: estimated(
            cost.carbon_g_per_mtok,
            terms
                .and_then(|t| t.carbon_g_per_kwh)
                .map(|g| format!("kWh/Mtok × {} gCO2e/kWh", crate::units::num(g)))
                .unwrap_or_default(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::report::compare::{CompareOptions, compare};
    use crate::report::cost::{Carbon, HardwarePrice, PriceBook};
    use crate::report::fixtures::{self, decode, jittered, prefill, with_power};
    use crate::report::load::{Loaded, Source};
    use crate::result::Scope;

    const SCHEMA_PATH: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../schema/card-v1.schema.json"
    );

    /// Two nodes, one with counter power and one with declared watts; prices with carbon.
    pub(crate) fn sample() -> CardDocument {
        let a = fixtures::run(
            "gpu-a1",
            "GPU A",
            vec![
                with_power(
                    prefill(512, &jittered(0.01, 0.01, 10, 1)),
                    Scope::GpuBoard,
                    Provenance::MeasuredCounter,
                    300.0,
                ),
                with_power(
                    decode(512, &jittered(0.001, 0.01, 10, 2)),
                    Scope::GpuBoard,
                    Provenance::MeasuredCounter,
                    180.0,
                ),
            ],
        );
        let b = fixtures::run(
            "cpu-b1",
            "llvmpipe (LLVM 15.0.6, 256 bits)",
            vec![with_power(
                decode(512, &jittered(0.004, 0.01, 10, 3)),
                Scope::CpuPackage,
                Provenance::Declared,
                65.0,
            )],
        );
        let loaded = Loaded {
            results: [a, b]
                .into_iter()
                .map(|doc| Source {
                    label: format!("{}.json", doc.node.hostname),
                    doc,
                })
                .collect(),
            skipped: Vec::new(),
            ..Default::default()
        };
        let prices = PriceBook {
            currency: Some("USD".into()),
            price_kwh: Some(0.12),
            pue: Some(1.3),
            carbon: Some(Carbon {
                grid_g_per_kwh: 400.0,
                green_g_per_kwh: 0.0,
                green_share: 0.5,
            }),
            adapters: BTreeMap::from([("GPU A".into(), HardwarePrice::rented(2.0))]),
            ..Default::default()
        };
        let report = compare(
            &loaded,
            &CompareOptions {
                metric: None,
                prices: Some(prices),
                ..Default::default()
            },
        )
        .unwrap();
        cards(&report, "2026-12-01T12:00:00Z")
    }

    #[test]
    fn every_figure_says_where_it_came_from_and_when() {
        let doc = sample();
        assert_eq!(doc.nodes.len(), 2);
        let a = &doc.nodes[0];
        assert_eq!(a.node, "gpu-a1");
        assert!(a.fingerprint.starts_with("fnv1a64:"));
        assert_eq!(a.workloads.len(), 2);
        assert_eq!(a.serving, None, "no serving measurements: none invented");
        let p = &a.workloads[0];
        assert_eq!(p.phase, CardPhase::Prefill);
        assert_eq!(p.tokens_per_s.provenance, FigureProvenance::Measured);
        assert_eq!(p.tokens_per_s.date, day(&a.measured_at));
        let tpj = p.tokens_per_j.as_ref().unwrap();
        assert_eq!(tpj.provenance, FigureProvenance::Measured);
        // PUE 1.3: energy per token is an estimate, dated today.
        let kwh = p.energy_kwh_per_mtok.as_ref().unwrap();
        assert_eq!(kwh.provenance, FigureProvenance::Estimated);
        assert_eq!(kwh.date, "2026-12-01");
        assert!((kwh.value - 1e6 / tpj.value / 3.6e6 * 1.3).abs() < 1e-12 * kwh.value);
        let carbon = p.carbon_g_per_mtok.as_ref().unwrap();
        assert!((carbon.value - kwh.value * 200.0).abs() < 1e-9 * carbon.value);
        let total = p.cost_per_mtok.as_ref().unwrap().value;
        let parts = p.energy_cost_per_mtok.as_ref().unwrap().value
            + p.hardware_cost_per_mtok.as_ref().unwrap().value;
        assert!((total - parts).abs() < 1e-12 * total);
        // Declared watts stay declared; no hardware price for llvmpipe: no total.
        let b = &doc.nodes[1];
        let d = &b.workloads[0];
        assert_eq!(
            d.tokens_per_j.as_ref().unwrap().provenance,
            FigureProvenance::Declared
        );
        assert!(d.hardware_cost_per_mtok.is_none() && d.cost_per_mtok.is_none());
        assert!(d.carbon_g_per_mtok.is_some());
    }

    /// The shipped JSON Schema is generated from these types; regenerate it with
    /// `TOKBENCH_BLESS=1 cargo test --release -p tokbench-core card` after changing them.
    #[test]
    fn shipped_card_schema_matches_the_types() {
        let generated =
            serde_json::to_string_pretty(&schemars::schema_for!(CardDocument)).unwrap() + "\n";
        if std::env::var_os("TOKBENCH_BLESS").is_some() {
            std::fs::write(SCHEMA_PATH, &generated).unwrap();
        }
        let shipped = std::fs::read_to_string(SCHEMA_PATH).unwrap_or_default();
        assert!(
            shipped == generated,
            "schema/card-v1.schema.json is out of date; run TOKBENCH_BLESS=1 cargo test --release -p tokbench-core card"
        );
    }

    #[test]
    fn cards_validate_against_the_shipped_schema() {
        let schema: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(SCHEMA_PATH).unwrap()).unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        let card = serde_json::to_value(sample()).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&card)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{errors:?}");
        // The schema is strict: a figure without its provenance is refused.
        let mut bad = card.clone();
        bad["nodes"][0]["workloads"][0]["tokens_per_s"]
            .as_object_mut()
            .unwrap()
            .remove("provenance");
        assert!(!validator.is_valid(&bad));
        let mut bad = card;
        bad["nodes"][0]["workloads"][0]["tokens_per_s"]["provenance"] = "guessed".into();
        assert!(!validator.is_valid(&bad));
        // And the card reads back into its own types.
        let text = serde_json::to_string(&sample()).unwrap();
        assert_eq!(
            serde_json::from_str::<CardDocument>(&text).unwrap(),
            sample()
        );
    }

    #[test]
    fn every_card_field_is_documented_in_the_schema() {
        let schema = serde_json::to_value(schemars::schema_for!(CardDocument)).unwrap();
        let mut undocumented = Vec::new();
        let mut objects: Vec<(String, serde_json::Value)> = schema["$defs"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        objects.push(("CardDocument".into(), schema.clone()));
        for (name, def) in &objects {
            for (field, prop) in def["properties"].as_object().into_iter().flatten() {
                if prop.get("description").is_none() {
                    undocumented.push(format!("{name}.{field}"));
                }
            }
        }
        assert!(undocumented.is_empty(), "{undocumented:?}");
    }
}

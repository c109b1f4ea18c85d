//! `tokbench compare`: results grouped by workload definition, nodes ranked by a metric, the
//! cost model applied, and each hardware group's spread with its slow nodes.
//!
//! Like for like: only valid results of the same workload definition are ranked together; every
//! result left out is listed with a one-line reason. tokens/J figures measured with different
//! scopes or provenances (a GPU board counter beside a node wall meter) are marked not
//! comparable and never ranked together.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::cost::{Cost, CostTerms, PriceBook};
use super::fleet::FleetStats;
use super::identity::{Fingerprint, HardwareGroup, WorkloadKey, node_label};
use super::load::{Loaded, Skipped, Source};
use crate::InputError;
use crate::dtype::WeightDtype;
use crate::result::{AdapterInfo, Provenance, RunResult, Scope, TimingMethod, WorkloadResult};

/// What nodes are ranked by.
#[derive(
    Serialize, strum::EnumString, strum::IntoStaticStr, strum::EnumIter, strum::EnumMessage,
)]
#[serde(rename_all = "snake_case")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Tokens per second (higher is better).
    #[strum(serialize = "tokens_per_s", serialize = "tokens-per-s")]
    TokensPerS,
    /// Tokens per joule (higher is better); needs power figures.
    #[strum(serialize = "tokens_per_j", serialize = "tokens-per-j")]
    TokensPerJ,
    /// Cost per million tokens (lower is better); needs prices.
    #[strum(serialize = "cost_per_mtok", serialize = "cost-per-mtok")]
    CostPerMtok,
}

impl Metric {
    /// The name used by flags and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::TokensPerS => "tokens_per_s",
            Self::TokensPerJ => "tokens_per_j",
            Self::CostPerMtok => "cost_per_mtok",
        }
    }

    /// The name people read.
    pub fn label(self) -> &'static str {
        match self {
            Self::TokensPerS => "tokens/s",
            Self::TokensPerJ => "tokens/J",
            Self::CostPerMtok => "cost/Mtok",
        }
    }

    /// False for costs.
    pub fn higher_is_better(self) -> bool {
        self != Self::CostPerMtok
    }

    /// Which way is better, in words: "higher" or "lower".
    pub fn better(self) -> &'static str {
        if self.higher_is_better() {
            "higher"
        } else {
            "lower"
        }
    }
}

/// How to compare.
#[derive(Debug, Clone, Default)]
pub struct CompareOptions {
    /// Rank by this; by default tokens/J where every result of a workload has a comparable
    /// figure, else tokens/s.
    pub metric: Option<Metric>,
    /// The cost model; none means no cost columns.
    pub prices: Option<PriceBook>,
    /// Rank serving results by output tokens/s per GPU at this many tokens/s per user
    /// (`--at-interactivity`); none ranks them by goodput.
    pub at_interactivity: Option<f64>,
}

/// The whole comparison: what `--format json` writes, and what every other format renders.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompareReport {
    /// Always "tokbench-compare".
    pub report: &'static str,
    /// Layout version of this JSON; bumped only when a field is renamed or changes meaning.
    pub version: u32,
    /// The metric asked for with `--metric`; null for the default.
    pub metric_requested: Option<Metric>,
    /// The prices used; null without a cost model.
    pub prices: Option<PriceBook>,
    /// What the prices come to (energy price paid, run hours, PUE or provisioned power,
    /// carbon intensity); null without a cost model.
    pub cost_terms: Option<CostTerms>,
    /// Result documents read.
    pub results: usize,
    /// One entry per prefill or decode workload definition, prefill first.
    pub workloads: Vec<WorkloadComparison>,
    /// Each result read: its node, hardware and when it ran (what a node card lists).
    pub runs: Vec<RunRow>,
    /// Each result's measured peaks (the FMA and copy probes).
    pub probes: Vec<ProbeRow>,
    /// Files and lines that were not read, with why.
    pub skipped: Vec<Skipped>,
    /// The serving results (`tokbench serve`): curves, throughput at an interactivity,
    /// goodput; absent when no result has a serving section.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serving: Option<super::serving::ServingComparison>,
    /// Other tools' figures (llama-bench, `vllm bench serve`), labelled with their tool and
    /// never ranked; absent when there are none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<super::reference::ReferenceRow>,
    /// One node's tokens/s for one workload in each weight format it ran, side by side: the
    /// formats are different workloads, never ranked against each other, so this is where
    /// they meet. Absent when no node ran a workload in two or more formats.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub by_format: Vec<FormatRow>,
    /// Whole nodes ranked by their node summaries (`run --adapter all`: every GPU at once),
    /// one ranking per workload, fastest node first; absent without node summaries.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeRanking>,
}

/// Nodes ranked by what all their GPUs make together for one workload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeRanking {
    /// The workload id, as in each GPU's result.
    pub workload: String,
    /// One row per node summary that holds the workload, by node tokens/s, highest first.
    pub nodes: Vec<NodeRow>,
}

/// One node in a [`NodeRanking`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeRow {
    /// 1 for the fastest node.
    pub rank: usize,
    /// The node's host name.
    pub hostname: String,
    /// GPUs whose result holds the workload, valid.
    pub gpus: u32,
    /// The node's tokens/s: the sum over those GPUs.
    pub tokens_per_s: f64,
    /// The slowest GPU's tokens/s.
    pub slowest_tokens_per_s: f64,
    /// fastest / slowest − 1 among the node's GPUs.
    pub spread: f64,
    /// The node's tokens per joule; null unless every GPU measured its own power.
    pub tokens_per_j: Option<f64>,
    /// The node summary file.
    pub source: String,
}

/// A node's tokens/s for one workload (all but the weight format the same) in each format.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FormatRow {
    /// The node: host name, with the scheduler's node name when it differs.
    pub node: String,
    /// Adapter and driver.
    pub hardware: HardwareGroup,
    /// The workload id with the weight format left out ("decode-llama3.2-1b-shape-b1-d512").
    pub workload: String,
    /// Tokens/s in each format, in the order of [`WeightDtype::ALL`] (widest first); the most
    /// recent valid result where the node ran a format more than once.
    pub formats: Vec<FormatFigure>,
}

/// One format's figure in a [`FormatRow`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FormatFigure {
    /// The weight format.
    pub dtype: WeightDtype,
    /// Tokens per second.
    pub tokens_per_s: f64,
    /// The result file it comes from.
    pub source: String,
}

/// One workload across nodes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkloadComparison {
    /// The workload definition every ranked entry shares.
    pub workload: WorkloadKey,
    /// What the entries are ranked by.
    pub metric: Metric,
    /// False when the metric's figures cannot be ranked together (see `note`).
    pub ranked: bool,
    /// False when tokens/J figures were measured with different scopes or provenances.
    pub tokens_per_j_comparable: bool,
    /// Why the group is not ranked or its tokens/J figures are not comparable.
    pub note: Option<String>,
    /// Results of this workload: ranked ones first, best first; then the unranked.
    pub entries: Vec<Entry>,
    /// Results left out, with why.
    pub excluded: Vec<Excluded>,
    /// What the fleet view summarises (the ranking metric, or tokens/s when not ranked).
    pub fleet_metric: Metric,
    /// One summary per hardware group (same adapter and driver).
    pub fleet: Vec<FleetGroup>,
}

/// One node's figures for one workload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    /// Position in the ranking, 1 = best; null when unranked.
    pub rank: Option<usize>,
    /// The node: host name, with the scheduler's node name when it differs (and the run's start
    /// time when the same node appears more than once).
    pub node: String,
    /// The file (":LINE" in a JSON-lines file).
    pub source: String,
    /// Adapter and driver.
    pub hardware: HardwareGroup,
    /// Tokens per second.
    pub tokens_per_s: f64,
    /// Tokens per joule; null without a power figure.
    pub tokens_per_j: Option<f64>,
    /// What the power figure covers; null without one.
    pub power_scope: Option<Scope>,
    /// Where the power figure came from; null without one.
    pub power_provenance: Option<Provenance>,
    /// Cost per million tokens, by part; null without a cost model.
    pub cost: Option<Cost>,
    /// The ranking metric's value; null when this node has none.
    pub value: Option<f64>,
    /// value / the best value in the group.
    pub relative_to_best: Option<f64>,
    /// True when the node lies beyond its hardware group's slow limit.
    pub slow: bool,
    /// Anything that qualifies the figures.
    pub notes: Vec<String>,
}

/// A result left out of a ranking.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Excluded {
    /// The node.
    pub node: String,
    /// The file.
    pub source: String,
    /// Why it was left out.
    pub reason: String,
    /// True when the result failed its correctness check (`valid: false`).
    pub invalid: bool,
}

/// One hardware group's spread for one workload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetGroup {
    /// Adapter and driver shared by the group.
    pub hardware: HardwareGroup,
    /// Summary of the fleet metric.
    #[serde(flatten)]
    pub stats: FleetStats,
    /// Nodes beyond the slow limit.
    pub slow_nodes: Vec<String>,
}

/// One result read: the node, its hardware and when it ran.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRow {
    /// The node, as the entries name it.
    pub node: String,
    /// The file (":LINE" in a JSON-lines file); entries name their result by it.
    pub source: String,
    /// The adapter as the result records it, less its feature list and limits (empty here).
    pub adapter: crate::result::AdapterInfo,
    /// Digest of the hardware fingerprint (adapter, driver, CPU): equal on equal hardware.
    pub fingerprint: String,
    /// When the run started (RFC 3339, UTC).
    pub started_at: String,
    /// The tokbench that measured it.
    pub tool: crate::result::ToolInfo,
}

/// One result's measured peaks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeRow {
    /// The node.
    pub node: String,
    /// Adapter name.
    pub adapter: String,
    /// FMA probe, GFLOP/s.
    pub fma_gflops: f64,
    /// Copy probe, GB/s.
    pub copy_gbps: f64,
    /// The file.
    pub source: String,
}

impl WorkloadComparison {
    /// True when some hardware group has more than one node: only then does the fleet view say
    /// more than the ranking.
    pub fn has_fleet(&self) -> bool {
        self.fleet.iter().any(|g| g.stats.nodes > 1)
    }
}

impl CompareReport {
    /// True when any result failed its correctness check.
    pub fn found_invalid(&self) -> bool {
        self.workloads
            .iter()
            .any(|w| w.excluded.iter().any(|e| e.invalid))
    }

    /// The currency label for cost columns, "" when none was given.
    pub fn currency(&self) -> &str {
        self.prices
            .as_ref()
            .and_then(|p| p.currency.as_deref())
            .unwrap_or("")
    }
}

/// Compares the loaded results. Fails (an input error) only when there is nothing to compare:
/// no result at all, or no prefill or decode workload in any of them.
pub fn compare(loaded: &Loaded, options: &CompareOptions) -> Result<CompareReport, InputError> {
    if loaded.results.is_empty() && loaded.node_summaries.is_empty() {
        let mut why = loaded.skipped_lines();
        if why.is_empty() {
            why.push("no paths given".into());
        }
        return Err(InputError::new(format!(
            "nothing to compare: no result could be read\n  {}",
            why.join("\n  ")
        )));
    }
    let mut by_id: BTreeMap<&str, Vec<(&Source, &WorkloadResult)>> = BTreeMap::new();
    for source in &loaded.results {
        for w in &source.doc.workloads {
            if w.phase.is_some() {
                by_id.entry(&w.id).or_default().push((source, w));
            }
        }
    }
    let serving = super::serving::compare_serving(
        &loaded.results,
        options.at_interactivity,
        options.prices.as_ref(),
    );
    let nodes = rank_nodes(loaded);
    if by_id.is_empty() && serving.is_none() && nodes.is_empty() {
        return Err(InputError::new(format!(
            "nothing to compare: none of the {} result(s) holds a prefill or decode workload \
             or a serving section (run `tokbench run` or `tokbench serve`; kernel results have \
             no tokens)",
            loaded.results.len()
        )));
    }
    let mut workloads: Vec<WorkloadComparison> = by_id
        .into_values()
        .map(|members| compare_workload(&members, options))
        .collect();
    workloads.sort_by(|a, b| a.workload.sort_key().cmp(&b.workload.sort_key()));
    let with_probes: Vec<&Source> = loaded
        .results
        .iter()
        .filter(|s| s.doc.probes.is_some())
        .collect();
    let probe_labels = node_labels(with_probes.iter().map(|s| &s.doc));
    let probes = with_probes
        .iter()
        .zip(probe_labels)
        .filter_map(|(s, node)| {
            s.doc.probes.map(|p| ProbeRow {
                node,
                adapter: s.doc.adapter.name.clone(),
                fma_gflops: p.fma_gflops,
                copy_gbps: p.copy_gbps,
                source: s.label.clone(),
            })
        })
        .collect();
    let runs = loaded
        .results
        .iter()
        .zip(node_labels(loaded.results.iter().map(|s| &s.doc)))
        .map(|(s, node)| RunRow {
            node,
            source: s.label.clone(),
            adapter: AdapterInfo {
                // Features and limits are long and say nothing a listing ranks by.
                features: Vec::new(),
                limits: BTreeMap::new(),
                ..s.doc.adapter.clone()
            },
            fingerprint: Fingerprint::of(&s.doc).digest(),
            started_at: crate::result::timestamp(&s.doc.started_at),
            tool: s.doc.tool.clone(),
        })
        .collect();
    Ok(CompareReport {
        report: "tokbench-compare",
        version: 1,
        metric_requested: options.metric,
        prices: options.prices.clone(),
        cost_terms: options.prices.as_ref().map(PriceBook::terms),
        results: loaded.results.len(),
        workloads,
        runs,
        probes,
        skipped: loaded.skipped.clone(),
        serving,
        references: loaded.references.clone(),
        by_format: by_format(loaded),
        nodes,
    })
}

/// The node summaries' workloads, each with its nodes ranked by node tokens/s.
fn rank_nodes(loaded: &Loaded) -> Vec<NodeRanking> {
    let mut by_id: BTreeMap<&str, Vec<NodeRow>> = BTreeMap::new();
    for (source, summary) in &loaded.node_summaries {
        for w in &summary.workloads {
            by_id.entry(&w.id).or_default().push(NodeRow {
                rank: 0,
                hostname: summary.hostname.clone(),
                gpus: w.gpus,
                tokens_per_s: w.tokens_per_s,
                slowest_tokens_per_s: w.slowest_tokens_per_s,
                spread: w.spread,
                tokens_per_j: w.tokens_per_j,
                source: source.clone(),
            });
        }
    }
    by_id
        .into_iter()
        .map(|(id, mut nodes)| {
            nodes.sort_by(|a, b| b.tokens_per_s.total_cmp(&a.tokens_per_s));
            for (i, n) in nodes.iter_mut().enumerate() {
                n.rank = i + 1;
            }
            NodeRanking {
                workload: id.to_string(),
                nodes,
            }
        })
        .collect()
}

/// The by-format view: valid prefill and decode figures grouped by node (host and hardware) and
/// by workload definition less its weight format, kept where a group holds two formats or more.
fn by_format(loaded: &Loaded) -> Vec<FormatRow> {
    struct Group<'a> {
        fingerprint: String,
        key: WorkloadKey,
        row: FormatRow,
        started: Vec<&'a chrono::DateTime<chrono::Utc>>,
    }
    let mut groups: Vec<Group<'_>> = Vec::new();
    for source in &loaded.results {
        let doc = &source.doc;
        let node = node_label(doc);
        let fingerprint = Fingerprint::of(doc).digest();
        for w in doc
            .workloads
            .iter()
            .filter(|w| w.phase.is_some() && w.valid)
        {
            let Some(tokens_per_s) = w.tokens_per_s else {
                continue;
            };
            let key = WorkloadKey {
                id: String::new(),
                dtype: WeightDtype::F32,
                ..WorkloadKey::of(w)
            };
            let figure = FormatFigure {
                dtype: w.dtype,
                tokens_per_s,
                source: source.label.clone(),
            };
            let started = &doc.started_at;
            let at = groups
                .iter()
                .position(|g| g.row.node == node && g.fingerprint == fingerprint && g.key == key);
            let Some(at) = at else {
                groups.push(Group {
                    fingerprint: fingerprint.clone(),
                    key,
                    row: FormatRow {
                        node: node.clone(),
                        hardware: HardwareGroup::of(doc),
                        workload: without_format(&w.id, w.dtype),
                        formats: vec![figure],
                    },
                    started: vec![started],
                });
                continue;
            };
            let g = &mut groups[at];
            match g.row.formats.iter().position(|f| f.dtype == w.dtype) {
                Some(i) if started > g.started[i] => {
                    g.row.formats[i] = figure;
                    g.started[i] = started;
                }
                Some(_) => {}
                None => {
                    g.row.formats.push(figure);
                    g.started.push(started);
                }
            }
        }
    }
    let order = |d: WeightDtype| WeightDtype::ALL.iter().position(|&x| x == d);
    groups
        .into_iter()
        .filter(|g| g.row.formats.len() >= 2)
        .map(|mut g| {
            g.row.formats.sort_by_key(|f| order(f.dtype));
            g.row
        })
        .collect()
}

/// `id` less its weight format's part ("decode-x-q4_0-b1" → "decode-x-b1").
fn without_format(id: &str, dtype: WeightDtype) -> String {
    let part = format!("-{}-", dtype.name());
    match id.find(&part) {
        Some(at) => format!("{}-{}", &id[..at], &id[at + part.len()..]),
        None => id.replace(&format!("-{}", dtype.name()), ""),
    }
}

fn compare_workload(
    members: &[(&Source, &WorkloadResult)],
    options: &CompareOptions,
) -> WorkloadComparison {
    let labels = node_labels(members.iter().map(|(s, _)| &s.doc));
    let mut excluded = Vec::new();
    let mut usable: Vec<(usize, &RunResult, &WorkloadResult)> = Vec::new();
    for (i, (source, w)) in members.iter().enumerate() {
        let reason = if !w.valid {
            Some(format!(
                "invalid: failed its correctness check ({})",
                w.correctness
                    .failure
                    .as_deref()
                    .unwrap_or("no reason recorded")
            ))
        } else if w.tokens_per_s.is_none() {
            Some("no tokens/s figure".to_string())
        } else {
            None
        };
        match reason {
            Some(reason) => excluded.push(Excluded {
                node: labels[i].clone(),
                source: source.label.clone(),
                reason,
                invalid: !w.valid,
            }),
            None => usable.push((i, &source.doc, w)),
        }
    }

    // The definition most results share is the one ranked; ties go to the first read.
    let keys: Vec<WorkloadKey> = members.iter().map(|(_, w)| WorkloadKey::of(w)).collect();
    let reference = {
        let mut counts: Vec<(&WorkloadKey, usize)> = Vec::new();
        for (i, _, _) in &usable {
            match counts.iter_mut().find(|(k, _)| *k == &keys[*i]) {
                Some((_, n)) => *n += 1,
                None => counts.push((&keys[*i], 1)),
            }
        }
        let best = counts.iter().map(|(_, n)| *n).max().unwrap_or(0);
        counts
            .iter()
            .find(|(_, n)| *n == best)
            .map_or_else(|| keys[0].clone(), |(k, _)| (*k).clone())
    };
    usable.retain(|(i, _, _)| {
        if keys[*i] == reference {
            return true;
        }
        excluded.push(Excluded {
            node: labels[*i].clone(),
            source: members[*i].0.label.clone(),
            reason: format!(
                "different workload definition: {}",
                reference.differences(&keys[*i]).join(", ")
            ),
            invalid: false,
        });
        false
    });

    // tokens/J of different scopes or provenances measure different things.
    let mut classes: BTreeMap<String, usize> = BTreeMap::new();
    for (_, _, w) in &usable {
        if w.tokens_per_j.is_some() {
            *classes.entry(power_class(w)).or_default() += 1;
        }
    }
    let tpj_comparable = classes.len() <= 1;
    let all_have_tpj =
        !usable.is_empty() && usable.iter().all(|(_, _, w)| w.tokens_per_j.is_some());
    let metric = options.metric.unwrap_or(if all_have_tpj && tpj_comparable {
        Metric::TokensPerJ
    } else {
        Metric::TokensPerS
    });
    // Energy from measured power needs comparable tokens/J; provisioned power does not.
    let energy_priced = options
        .prices
        .as_ref()
        .is_some_and(|p| p.prices_energy() && p.energy_needs_power());
    let not_comparable = (!tpj_comparable).then(|| {
        let list: Vec<String> = classes
            .iter()
            .map(|(class, n)| format!("{class} on {n}"))
            .collect();
        format!(
            "tokens/J not comparable: power measured differently ({})",
            list.join(", ")
        )
    });
    let ranked = match metric {
        Metric::TokensPerS => true,
        Metric::TokensPerJ => tpj_comparable,
        Metric::CostPerMtok => tpj_comparable || !energy_priced,
    };
    let note = match (&not_comparable, ranked) {
        (Some(n), false) => Some(format!("{n}; not ranked by {}", metric.label())),
        (Some(n), true) => Some(n.clone()),
        (None, _) => None,
    };

    let mut entries: Vec<Entry> = usable
        .iter()
        .map(|(i, doc, w)| {
            let tokens_per_s = w.tokens_per_s.expect("filtered above");
            let cost = options
                .prices
                .as_ref()
                .map(|p| p.cost(doc, tokens_per_s, w.tokens_per_j));
            let value = match metric {
                Metric::TokensPerS => Some(tokens_per_s),
                Metric::TokensPerJ => w.tokens_per_j,
                Metric::CostPerMtok => cost.as_ref().and_then(|c| c.total_per_mtok),
            };
            let has_power = w.tokens_per_j.is_some();
            Entry {
                rank: None,
                node: labels[*i].clone(),
                source: members[*i].0.label.clone(),
                hardware: HardwareGroup::of(doc),
                tokens_per_s,
                tokens_per_j: w.tokens_per_j,
                power_scope: has_power.then_some(w.power.scope).flatten(),
                power_provenance: has_power.then_some(w.power.provenance),
                notes: entry_notes(doc, w, metric, value.is_none(), cost.as_ref()),
                cost,
                value,
                relative_to_best: None,
                slow: false,
            }
        })
        .collect();

    let better = |a: f64, b: f64| {
        if metric.higher_is_better() {
            b.total_cmp(&a)
        } else {
            a.total_cmp(&b)
        }
    };
    entries.sort_by(|a, b| match (a.value, b.value) {
        (Some(x), Some(y)) if ranked => better(x, y).then_with(|| a.node.cmp(&b.node)),
        (Some(_), None) if ranked => std::cmp::Ordering::Less,
        (None, Some(_)) if ranked => std::cmp::Ordering::Greater,
        _ => a.node.cmp(&b.node),
    });
    if ranked {
        let best = entries.first().and_then(|e| e.value);
        let mut rank = 0;
        for e in &mut entries {
            if let (Some(v), Some(best)) = (e.value, best) {
                rank += 1;
                e.rank = Some(rank);
                e.relative_to_best = Some(v / best);
            }
        }
    }

    let fleet_metric = if ranked { metric } else { Metric::TokensPerS };
    let fleet_value = |e: &Entry| {
        if ranked {
            e.value
        } else {
            Some(e.tokens_per_s)
        }
    };
    let mut groups: BTreeMap<HardwareGroup, Vec<usize>> = BTreeMap::new();
    for (i, e) in entries.iter().enumerate() {
        if fleet_value(e).is_some() {
            groups.entry(e.hardware.clone()).or_default().push(i);
        }
    }
    let higher = fleet_metric.higher_is_better();
    let mut fleet = Vec::new();
    for (hardware, idx) in groups {
        let values: Vec<f64> = idx
            .iter()
            .filter_map(|&i| fleet_value(&entries[i]))
            .collect();
        let stats = FleetStats::of(&values, higher);
        let mut slow_nodes = Vec::new();
        for &i in &idx {
            if fleet_value(&entries[i]).is_some_and(|v| stats.is_slow(v, higher)) {
                entries[i].slow = true;
                slow_nodes.push(entries[i].node.clone());
            }
        }
        fleet.push(FleetGroup {
            hardware,
            stats,
            slow_nodes,
        });
    }

    excluded.sort_by(|a, b| a.node.cmp(&b.node).then_with(|| a.source.cmp(&b.source)));
    WorkloadComparison {
        workload: reference,
        metric,
        ranked,
        tokens_per_j_comparable: tpj_comparable,
        note,
        entries,
        excluded,
        fleet_metric,
        fleet,
    }
}

/// Node labels for the members of a group; a node seen twice gets its run's start time.
pub(crate) fn node_labels<'a>(docs: impl IntoIterator<Item = &'a RunResult>) -> Vec<String> {
    let docs: Vec<&RunResult> = docs.into_iter().collect();
    let plain: Vec<String> = docs.iter().map(|d| node_label(d)).collect();
    let seen: BTreeMap<&str, usize> = plain.iter().fold(BTreeMap::new(), |mut m, l| {
        *m.entry(l.as_str()).or_default() += 1;
        m
    });
    let mut used = BTreeSet::new();
    docs.iter()
        .zip(&plain)
        .map(|(doc, label)| {
            if seen[label.as_str()] == 1 {
                return label.clone();
            }
            let started = crate::result::timestamp(&doc.started_at);
            let mut candidate = format!("{label} @ {started}");
            let mut n = 2;
            while !used.insert(candidate.clone()) {
                candidate = format!("{label} @ {started} #{n}");
                n += 1;
            }
            candidate
        })
        .collect()
}

/// "gpu-board/measured-counter": what a tokens/J figure means.
fn power_class(w: &WorkloadResult) -> String {
    let scope = w.power.scope.map_or("unknown-scope".to_string(), |s| {
        serde_json::to_value(s)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    });
    let provenance = serde_json::to_value(w.power.provenance)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    format!("{scope}/{provenance}")
}

fn entry_notes(
    doc: &RunResult,
    w: &WorkloadResult,
    metric: Metric,
    no_value: bool,
    cost: Option<&Cost>,
) -> Vec<String> {
    let mut notes = Vec::new();
    if no_value && metric == Metric::TokensPerJ {
        notes.push(format!(
            "no tokens/J: {}",
            w.power.reason.as_deref().unwrap_or("no power figure")
        ));
    }
    // Whatever the ranking, a missing total says why.
    if let Some(missing) = cost.and_then(|c| c.missing.as_deref()) {
        notes.push(format!("no total cost: {missing}"));
    }
    if w.weights_shared_across_layers == Some(true) {
        notes.push("weights shared across layers (did not fit)".into());
    }
    if doc.timing_method == TimingMethod::WallClock {
        notes.push("wall-clock timing".into());
    }
    if doc.interrupted {
        notes.push("run interrupted".into());
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::cost::HardwarePrice;
    use crate::report::fixtures::{self, decode, jittered, prefill, source, with_power};

    fn loaded(docs: Vec<RunResult>) -> Loaded {
        Loaded {
            results: docs.into_iter().map(source).collect(),
            skipped: Vec::new(),
            ..Default::default()
        }
    }

    /// Prefill at `median_s` on `host`.
    fn node(host: &str, median_s: f64) -> RunResult {
        fixtures::run(
            host,
            "GPU A",
            vec![prefill(64, &jittered(median_s, 0.01, 10, 1))],
        )
    }

    /// `w` run in `dtype` instead.
    fn in_format(mut w: WorkloadResult, dtype: WeightDtype) -> WorkloadResult {
        w.id = w.id.replace("-f32-", &format!("-{}-", dtype.name()));
        w.dtype = dtype;
        w
    }

    #[test]
    fn a_nodes_formats_stand_side_by_side_and_are_never_ranked_together() {
        let f32_run = fixtures::run("a", "GPU A", vec![decode(512, &[0.010; 5])]);
        let mut q4 = fixtures::run(
            "a",
            "GPU A",
            vec![in_format(decode(512, &[0.004; 5]), WeightDtype::Q4_0)],
        );
        q4.started_at = f32_run.started_at + chrono::Duration::minutes(5);
        // A rerun of q4_0 an hour earlier: the later figure is the one shown.
        let mut q4_old = q4.clone();
        q4_old.started_at = f32_run.started_at - chrono::Duration::hours(1);
        q4_old.workloads[0] = in_format(decode(512, &[0.008; 5]), WeightDtype::Q4_0);
        // Another node with one format only: no row; a second depth on node a: no row either.
        let other = fixtures::run("b", "GPU A", vec![decode(512, &[0.009; 5])]);
        let deeper = fixtures::run("a", "GPU A", vec![decode(1024, &[0.011; 5])]);
        let report = compare(
            &loaded(vec![f32_run, q4, q4_old, other, deeper]),
            &CompareOptions::default(),
        )
        .expect("report");
        // Each format stays its own workload in the rankings.
        let ids: Vec<&str> = report
            .workloads
            .iter()
            .map(|w| w.workload.id.as_str())
            .collect();
        assert!(
            ids.contains(&"decode-tiny-f32-b1-d512") && ids.contains(&"decode-tiny-q4_0-b1-d512"),
            "{ids:?}"
        );
        assert_eq!(report.by_format.len(), 1, "{:#?}", report.by_format);
        let row = &report.by_format[0];
        assert_eq!(row.node, "a");
        assert_eq!(row.workload, "decode-tiny-b1-d512");
        let figures: Vec<(WeightDtype, f64)> = row
            .formats
            .iter()
            .map(|f| (f.dtype, f.tokens_per_s))
            .collect();
        assert_eq!(
            figures,
            vec![(WeightDtype::F32, 100.0), (WeightDtype::Q4_0, 250.0)]
        );
        let table = crate::report::CompareFormat::Table
            .render(&report)
            .expect("table");
        assert!(table.contains("tokens/s by weight format"), "{table}");
        assert!(table.contains("q4_0 tok/s"), "{table}");
    }

    /// Node summaries (`run --adapter all`) rank whole nodes: a two-GPU node's 180 tok/s
    /// above a one-GPU node's 100, in the JSON and in every rendering.
    #[test]
    fn whole_nodes_are_ranked_by_their_summaries() {
        use crate::report::node_summary::{GpuRun, NodeSummary};
        let summary = |host: &str, steps: &[f64]| {
            let runs = steps.iter().enumerate().map(|(i, &step_s)| {
                let gpu = GpuRun {
                    adapter_index: i,
                    adapter: format!("GPU {i}"),
                    backend: "Vulkan".into(),
                    result: Some(format!("{host}-{i}.json")),
                    exit_code: 0,
                    error: None,
                };
                let doc = fixtures::run(host, &gpu.adapter, vec![decode(512, &[step_s; 5])]);
                (gpu, Some(doc))
            });
            NodeSummary::new(host, runs.collect())
        };
        let mut l = loaded(Vec::new());
        l.node_summaries = vec![
            ("one.json".into(), summary("one", &[0.01])),
            ("two.json".into(), summary("two", &[0.01, 0.0125])),
        ];
        let r = compare(&l, &CompareOptions::default()).unwrap();
        assert_eq!(r.nodes.len(), 1, "{:#?}", r.nodes);
        let rows: Vec<_> = r.nodes[0]
            .nodes
            .iter()
            .map(|n| (n.rank, n.hostname.as_str(), n.gpus))
            .collect();
        assert_eq!(rows, [(1, "two", 2), (2, "one", 1)]);
        assert!((r.nodes[0].nodes[0].tokens_per_s - 180.0).abs() < 1e-6);
        assert!((r.nodes[0].nodes[0].spread - 0.25).abs() < 1e-9);
        for format in [
            crate::report::CompareFormat::Table,
            crate::report::CompareFormat::Md,
            crate::report::CompareFormat::Html,
        ] {
            let text = format.render(&r).expect("rendered");
            assert!(
                text.contains("two") && text.contains("180"),
                "{format:?}: {text}"
            );
        }
    }

    #[test]
    fn nodes_are_ranked_best_first_with_their_share_of_the_best() {
        let docs = vec![node("slow", 0.02), node("fast", 0.01), node("mid", 0.0125)];
        let r = compare(&loaded(docs), &CompareOptions::default()).unwrap();
        let w = &r.workloads[0];
        assert_eq!(w.metric, Metric::TokensPerS, "no power: tokens/s");
        let order: Vec<(&str, Option<usize>)> = w
            .entries
            .iter()
            .map(|e| (e.node.as_str(), e.rank))
            .collect();
        assert_eq!(
            order,
            [("fast", Some(1)), ("mid", Some(2)), ("slow", Some(3))]
        );
        let rel = w.entries[2].relative_to_best.unwrap();
        assert!((rel - 0.5).abs() < 0.02, "{rel}");
    }

    #[test]
    fn default_metric_is_tokens_per_j_where_every_node_has_comparable_power() {
        let powered = |host: &str, median_s: f64, watts: f64| {
            let w = prefill(64, &jittered(median_s, 0.01, 10, 2));
            fixtures::run(
                host,
                "GPU A",
                vec![with_power(
                    w,
                    Scope::GpuBoard,
                    Provenance::MeasuredCounter,
                    watts,
                )],
            )
        };
        // "fast" is quicker but burns four times the power.
        let docs = vec![powered("fast", 0.01, 400.0), powered("frugal", 0.02, 100.0)];
        let r = compare(&loaded(docs.clone()), &CompareOptions::default()).unwrap();
        let w = &r.workloads[0];
        assert_eq!(w.metric, Metric::TokensPerJ);
        assert_eq!(w.entries[0].node, "frugal");
        assert!(w.tokens_per_j_comparable && w.note.is_none());

        // A node-wall figure beside GPU-board figures: not comparable, not ranked by tokens/J.
        let mut mixed = docs.clone();
        let w0 = &mut mixed[1].workloads[0];
        w0.power.scope = Some(Scope::NodeWall);
        let options = CompareOptions {
            metric: Some(Metric::TokensPerJ),
            prices: None,
            ..Default::default()
        };
        let r = compare(&loaded(mixed.clone()), &options).unwrap();
        let w = &r.workloads[0];
        assert!(!w.ranked && !w.tokens_per_j_comparable);
        assert!(w.entries.iter().all(|e| e.rank.is_none()));
        assert_eq!(
            w.note.as_deref(),
            Some(
                "tokens/J not comparable: power measured differently (gpu-board/measured-counter on 1, node-wall/measured-counter on 1); not ranked by tokens/J"
            )
        );
        // By default such a group falls back to tokens/s, and still says why.
        let r = compare(&loaded(mixed), &CompareOptions::default()).unwrap();
        assert_eq!(r.workloads[0].metric, Metric::TokensPerS);
        assert_eq!(r.workloads[0].entries[0].node, "fast");
        assert!(
            r.workloads[0]
                .note
                .as_deref()
                .unwrap()
                .starts_with("tokens/J not comparable")
        );
    }

    #[test]
    fn invalid_results_and_other_definitions_are_left_out_with_a_reason() {
        let mut bad = node("broken", 0.01);
        bad.workloads[0].valid = false;
        bad.workloads[0].correctness.failure = Some("NMSE 3e-2 above 1e-5".into());
        let mut other = node("fewer-layers", 0.005);
        other.workloads[0].layers_run = Some(1);
        let docs = vec![node("a", 0.01), node("b", 0.011), bad, other];
        let r = compare(&loaded(docs), &CompareOptions::default()).unwrap();
        let w = &r.workloads[0];
        assert_eq!(w.entries.len(), 2);
        let reasons: Vec<(&str, &str, bool)> = w
            .excluded
            .iter()
            .map(|e| (e.node.as_str(), e.reason.as_str(), e.invalid))
            .collect();
        assert_eq!(
            reasons,
            [
                (
                    "broken",
                    "invalid: failed its correctness check (NMSE 3e-2 above 1e-5)",
                    true
                ),
                (
                    "fewer-layers",
                    "different workload definition: layers_run 1 instead of 2",
                    false
                ),
            ]
        );
        assert!(r.found_invalid());
    }

    #[test]
    fn a_slow_node_is_flagged_within_its_hardware_group_only() {
        let mut docs: Vec<RunResult> = (0..5)
            .map(|i| node(&format!("a{i}"), 0.010 * (1.0 + 0.002 * f64::from(i))))
            .collect();
        docs.push(node("a-slow", 0.0125));
        // A different adapter that is slower still is its own group, not a slow node.
        docs.push(fixtures::run(
            "b0",
            "GPU B",
            vec![prefill(64, &jittered(0.03, 0.01, 10, 1))],
        ));
        let r = compare(&loaded(docs), &CompareOptions::default()).unwrap();
        let w = &r.workloads[0];
        let slow: Vec<&str> = w
            .entries
            .iter()
            .filter(|e| e.slow)
            .map(|e| e.node.as_str())
            .collect();
        assert_eq!(slow, ["a-slow"]);
        assert_eq!(w.fleet.len(), 2);
        assert_eq!((w.fleet[0].stats.nodes, w.fleet[1].stats.nodes), (6, 1));
        assert_eq!(w.fleet[0].slow_nodes, ["a-slow"]);
    }

    #[test]
    fn costs_rank_cheapest_first_and_say_what_is_missing() {
        let rented = |host: &str, adapter: &str, median_s: f64| {
            fixtures::run(
                host,
                adapter,
                vec![prefill(64, &jittered(median_s, 0.01, 10, 3))],
            )
        };
        // B is twice as fast but four times the price per hour.
        let docs = vec![
            rented("a", "GPU A", 0.02),
            rented("b", "GPU B", 0.01),
            rented("c", "GPU C", 0.01),
        ];
        let price = HardwarePrice::rented;
        let prices = PriceBook {
            adapters: BTreeMap::from([("GPU A".into(), price(1.0)), ("GPU B".into(), price(4.0))]),
            ..Default::default()
        };
        let options = CompareOptions {
            metric: Some(Metric::CostPerMtok),
            prices: Some(prices),
            ..Default::default()
        };
        let r = compare(&loaded(docs), &options).unwrap();
        let w = &r.workloads[0];
        let order: Vec<(&str, Option<usize>)> = w
            .entries
            .iter()
            .map(|e| (e.node.as_str(), e.rank))
            .collect();
        assert_eq!(order, [("a", Some(1)), ("b", Some(2)), ("c", None)]);
        assert!((w.entries[1].relative_to_best.unwrap() - 2.0).abs() < 0.05);
        assert_eq!(
            w.entries[2].notes,
            ["no total cost: no hardware price for this node or adapter"]
        );
    }

    #[test]
    fn groups_are_ordered_prefill_first_and_same_node_twice_is_told_apart() {
        let mut again = node("a", 0.01);
        again.started_at = "2026-11-22T08:00:00.000Z".parse().unwrap();
        let mut with_decode = node("a", 0.01);
        with_decode
            .workloads
            .insert(0, decode(512, &[0.001, 0.0011]));
        let r = compare(
            &loaded(vec![with_decode, again]),
            &CompareOptions::default(),
        )
        .unwrap();
        let kinds: Vec<&str> = r.workloads.iter().map(|w| w.workload.kind.name()).collect();
        assert_eq!(kinds, ["prefill", "decode"]);
        let nodes: Vec<&str> = r.workloads[0]
            .entries
            .iter()
            .map(|e| e.node.as_str())
            .collect();
        assert_eq!(nodes.len(), 2);
        assert!(nodes.contains(&"a @ 2026-11-22T08:00:00.000Z"), "{nodes:?}");
    }

    #[test]
    fn nothing_to_compare_is_an_input_error() {
        let err = compare(&Loaded::default(), &CompareOptions::default()).unwrap_err();
        assert!(err.to_string().contains("no result could be read"), "{err}");
        let kernel_only = fixtures::node("k", "GPU A");
        let err = compare(&loaded(vec![kernel_only]), &CompareOptions::default()).unwrap_err();
        assert!(err.to_string().contains("prefill or decode"), "{err}");
    }
}

//! Serving results side by side: each node's curve (output tokens/s per GPU against tokens/s
//! per user), its throughput at an interactivity on its Pareto frontier, its goodput, and one
//! row per point. Nodes are ranked only against nodes that served the same requests (model,
//! weight type, prompt and output lengths).

use serde::Serialize;

use super::compare::node_labels;
use super::cost::PriceBook;
use super::load::Source;
use crate::result::{Goodput, PointSource, RunResult, ServingPoint};
use crate::serving;

/// The serving part of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServingComparison {
    /// The interactivity asked for with `--at-interactivity`, tokens/s per user; null ranks
    /// by goodput (or, without an SLO, by the best throughput).
    pub at_interactivity: Option<f64>,
    /// What the ranking is by, in words.
    pub ranked_by: String,
    /// One entry per result with a serving section, ranked within its group.
    pub nodes: Vec<ServingNode>,
}

/// One node's serving result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServingNode {
    /// What it is ranked against: "preset dtype isl/osl".
    pub group: String,
    /// 1 for the best of its group; null when it has no figure for the ranking.
    pub rank: Option<usize>,
    /// Node label (host name, with the run time when a host appears twice).
    pub node: String,
    /// Adapter name.
    pub adapter: String,
    /// Where the result came from.
    pub source: String,
    /// Scenario name.
    pub scenario: String,
    /// Output tokens/s per GPU at `at_interactivity`, interpolated on the executed frontier;
    /// null when asked for none or when no point is that interactive.
    pub throughput_at: Option<f64>,
    /// The goodput recorded in the result.
    pub goodput: Option<Goodput>,
    /// Name of the SLO the goodput is judged at.
    pub slo: Option<String>,
    /// The highest executed output tokens/s per GPU.
    pub best_throughput: f64,
    /// The figure ranked on.
    pub ranked_value: Option<f64>,
    /// Every point (executed then estimated), as the result holds them.
    pub points: Vec<ServingPoint>,
    /// Cost per million output tokens of each point (same order), at its output tokens/s and
    /// output tokens/J; null without prices or a figure they need.
    pub cost_per_mtok: Vec<Option<f64>>,
}

fn group_of(doc: &RunResult) -> String {
    let s = doc.serving.as_ref().expect("only serving results");
    let (preset, dtype, layers) =
        doc.plan
            .model
            .as_ref()
            .map_or(("?".to_string(), "?".to_string(), String::new()), |m| {
                let layers = if m.layers_run < m.model.n_layers {
                    format!(" {} layers", m.layers_run)
                } else {
                    String::new()
                };
                (m.preset.clone(), m.dtype.name().to_string(), layers)
            });
    format!("{preset} {dtype}{layers} {}/{}", s.isl_tokens, s.osl_tokens)
}

/// The serving comparison of `results`; `None` when none has a serving section.
pub fn compare_serving(
    results: &[Source],
    at: Option<f64>,
    prices: Option<&PriceBook>,
) -> Option<ServingComparison> {
    let with: Vec<&Source> = results.iter().filter(|s| s.doc.serving.is_some()).collect();
    if with.is_empty() {
        return None;
    }
    let labels = node_labels(with.iter().map(|s| &s.doc));
    let mut nodes: Vec<ServingNode> = with
        .iter()
        .zip(labels)
        .map(|(src, node)| {
            let s = src.doc.serving.as_ref().expect("filtered");
            let executed: Vec<(f64, f64)> = s
                .points
                .iter()
                .filter(|p| p.source == PointSource::Executed)
                .map(|p| (p.tokens_per_s_per_user, p.output_tokens_per_s_per_gpu))
                .collect();
            let best = executed.iter().map(|p| p.1).fold(0.0, f64::max);
            let throughput_at = at.and_then(|x| serving::throughput_at(&executed, x));
            let ranked_value = match at {
                Some(_) => throughput_at,
                None => match &s.goodput {
                    Some(g) => Some(g.output_tokens_per_s_per_gpu),
                    None if s.slo.is_some() => None,
                    None => (!executed.is_empty()).then_some(best),
                },
            };
            ServingNode {
                group: group_of(&src.doc),
                rank: None,
                node,
                adapter: src.doc.adapter.name.clone(),
                source: src.label.clone(),
                scenario: s.scenario.clone(),
                throughput_at,
                goodput: s.goodput.clone(),
                slo: s.slo.as_ref().map(|x| x.name.clone()),
                best_throughput: best,
                ranked_value,
                cost_per_mtok: s
                    .points
                    .iter()
                    .map(|p| {
                        let book = prices?;
                        (p.output_tokens_per_s_per_gpu > 0.0)
                            .then(|| {
                                book.cost(
                                    &src.doc,
                                    p.output_tokens_per_s_per_gpu,
                                    p.output_tokens_per_j,
                                )
                                .total_per_mtok
                            })
                            .flatten()
                    })
                    .collect(),
                points: s.points.clone(),
            }
        })
        .collect();
    nodes.sort_by(|a, b| {
        a.group.cmp(&b.group).then(
            b.ranked_value
                .unwrap_or(f64::NEG_INFINITY)
                .total_cmp(&a.ranked_value.unwrap_or(f64::NEG_INFINITY)),
        )
    });
    let mut last_group = String::new();
    let mut rank = 0;
    for n in &mut nodes {
        if n.group != last_group {
            last_group = n.group.clone();
            rank = 0;
        }
        if n.ranked_value.is_some() {
            rank += 1;
            n.rank = Some(rank);
        }
    }
    let ranked_by = match at {
        Some(x) => format!(
            "output tokens/s per GPU at {x} tokens/s per user or more (interpolated on each node's executed Pareto frontier)"
        ),
        None => "goodput: output tokens/s per GPU of the highest concurrency meeting the result's SLO at p99 (the best executed throughput where a result has no SLO)".to_string(),
    };
    Some(ServingComparison {
        at_interactivity: at,
        ranked_by,
        nodes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::load::Source;
    use crate::result::fixtures;
    use crate::result::{Percentiles, ServingSection};
    use crate::serving::schedule::{Limit, Schedule};

    /// A serving result whose executed points are (tok/s/user, tok/s/GPU) pairs.
    pub(crate) fn served(host: &str, curve: &[(u32, f64, f64)]) -> RunResult {
        let mut doc = fixtures::node(host, "GPU");
        let points = curve
            .iter()
            .map(|&(c, user, gpu)| {
                let mut s = Schedule::new(1, 1, 1, 1, Limit::Requests(1));
                s.plan();
                s.complete(1.0);
                let mut p = serving::point(c, PointSource::Executed, &s);
                p.tokens_per_s_per_user = user;
                p.output_tokens_per_s_per_gpu = gpu;
                p.tpot = Some(Percentiles {
                    p50_s: 1.0 / user,
                    p90_s: 1.0 / user,
                    p99_s: 1.0 / user,
                    mean_s: 1.0 / user,
                    count: 1,
                });
                p
            })
            .collect();
        doc.serving = Some(ServingSection {
            scenario: "chat".into(),
            isl_tokens: 1024,
            osl_tokens: 1024,
            step_token_budget: 512,
            policy: "test".into(),
            requests_per_point: Some(4),
            duration_limit_s: None,
            gpus: 1,
            slo: None,
            points,
            frontier_concurrencies: Vec::new(),
            goodput: None,
            estimate_gaps: Vec::new(),
        });
        doc
    }

    fn source(doc: RunResult) -> Source {
        Source {
            label: doc.node.hostname.clone(),
            doc,
        }
    }

    #[test]
    fn nodes_rank_by_throughput_at_an_interactivity_on_their_frontier() {
        let a = served("a", &[(1, 60.0, 60.0), (4, 40.0, 160.0), (16, 10.0, 300.0)]);
        let b = served("b", &[(1, 90.0, 90.0), (4, 70.0, 250.0), (16, 30.0, 400.0)]);
        let c = compare_serving(&[source(a), source(b)], Some(50.0), None).unwrap();
        assert_eq!(c.nodes[0].node, "b");
        assert_eq!(c.nodes[0].rank, Some(1));
        // b at 50 lies between (30, 400) and (70, 250): 400 - 150 × 20/40.
        assert_eq!(c.nodes[0].throughput_at, Some(325.0));
        // a at 50: between (40, 160) and (60, 60).
        assert_eq!(c.nodes[1].throughput_at, Some(110.0));
        // Nobody reaches 100 tok/s per user: nobody is ranked.
        let none = compare_serving(
            &[source(served("a", &[(1, 60.0, 60.0)]))],
            Some(100.0),
            None,
        )
        .unwrap();
        assert_eq!(none.nodes[0].rank, None);
        // Without an interactivity and an SLO: the best throughput.
        let best = compare_serving(
            &[
                source(served("a", &[(1, 60.0, 60.0), (4, 40.0, 160.0)])),
                source(served("b", &[(1, 90.0, 90.0)])),
            ],
            None,
            None,
        )
        .unwrap();
        assert_eq!(best.nodes[0].node, "a");
        assert!(compare_serving(&[source(fixtures::node("x", "GPU"))], None, None).is_none());
    }
}

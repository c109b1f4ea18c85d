//! The report's tables as one format-neutral grid, built once: headers, column alignment, rows
//! of cells. Each format (terminal, Markdown, HTML, CSV) renders these grids and only writes its
//! own prose around them, so a column added here appears in every format alike.
//!
//! Cells keep untrusted text (host names, notes, paths) apart from figures tokbench formatted
//! itself: each format escapes the first its own way and writes the second as it is.

use super::{basis_text, change_text, check_figures, cost_headers};
use crate::dtype::WeightDtype;
use crate::model::Phase;
use crate::report::check::{CheckMetric, CheckReport, Verdict};
use crate::report::compare::{CompareReport, Entry, Excluded, WorkloadComparison};
use crate::units::{full, num, opt_num, pct};

/// One piece of a cell's content.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Span {
    /// Text from a result file or a report's reasons: escaped by every format.
    Text(String),
    /// A figure or word tokbench wrote itself ("51663", "[+1.0%, +2.0%]"): written as it is.
    Figure(String),
    /// Text to stand out (a gated regression): bold where the format has bold, plain otherwise.
    Strong(String),
    /// A warning flag ("slow node"): bold where the format has bold, upper case on a terminal.
    Alert(&'static str),
}

/// A cell: its spans, joined by "; ".
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Cell(pub Vec<Span>);

impl Cell {
    fn text(s: impl Into<String>) -> Self {
        Self(vec![Span::Text(s.into())])
    }

    fn figure(s: impl Into<String>) -> Self {
        Self(vec![Span::Figure(s.into())])
    }

    fn empty() -> Self {
        Self(Vec::new())
    }

    /// The cell as plain text with `render` applied to each span, joined by "; ".
    pub fn join(&self, render: impl Fn(&Span) -> String) -> String {
        self.0.iter().map(render).collect::<Vec<_>>().join("; ")
    }
}

/// How a column is aligned: numbers to the right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Align {
    /// Text.
    Left,
    /// Numbers.
    Right,
}

/// One row, and whether it is flagged (a slow node: highlighted where the format can).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    /// One cell per column.
    pub cells: Vec<Cell>,
    /// Highlighted row.
    pub flagged: bool,
}

/// A table: headers with their alignment, and rows.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Grid {
    /// Column headers (tokbench's own words; the currency comes from the prices file).
    pub headers: Vec<String>,
    /// Alignment per column.
    pub align: Vec<Align>,
    /// The rows.
    pub rows: Vec<Row>,
}

impl Grid {
    fn new(columns: &[(&str, Align)]) -> Self {
        Self {
            headers: columns.iter().map(|(h, _)| (*h).to_string()).collect(),
            align: columns.iter().map(|(_, a)| *a).collect(),
            rows: Vec::new(),
        }
    }

    fn column(&mut self, header: impl Into<String>, align: Align) {
        self.headers.push(header.into());
        self.align.push(align);
    }

    fn push(&mut self, cells: Vec<Cell>, flagged: bool) {
        debug_assert_eq!(cells.len(), self.headers.len(), "{:?}", self.headers);
        self.rows.push(Row { cells, flagged });
    }
}

use Align::{Left, Right};

/// The header of the tokens/J column: it says when the figures are not comparable.
fn tokens_per_j_header(w: &WorkloadComparison) -> &'static str {
    if w.tokens_per_j_comparable {
        "tokens/J"
    } else {
        "tokens/J (not comparable)"
    }
}

/// A workload's ranking: one row per node, best first.
pub(crate) fn ranking(r: &CompareReport, w: &WorkloadComparison) -> Grid {
    let mut g = Grid::new(&[
        ("rank", Right),
        ("node", Left),
        ("adapter", Left),
        ("tokens/s", Right),
        (tokens_per_j_header(w), Right),
    ]);
    let costs = cost_headers(r);
    let carbon = r.prices.as_ref().is_some_and(|p| p.prices_carbon());
    for h in costs.iter().flatten() {
        g.column(h.clone(), Right);
    }
    g.column("of best", Right);
    g.column("notes", Left);
    for e in &w.entries {
        let mut cells = vec![
            Cell::figure(e.rank.map_or("-".into(), |r| r.to_string())),
            Cell::text(&e.node),
            Cell::text(&e.hardware.adapter),
            Cell::figure(num(e.tokens_per_s)),
            Cell::figure(opt_num(e.tokens_per_j)),
        ];
        if costs.is_some() {
            let c = e.cost.clone().unwrap_or_default();
            cells.extend(
                [c.energy_per_mtok, c.hardware_per_mtok, c.total_per_mtok]
                    .map(|v| Cell::figure(opt_num(v))),
            );
            if carbon {
                cells.push(Cell::figure(opt_num(c.carbon_g_per_mtok)));
            }
        }
        cells.push(Cell::figure(e.relative_to_best.map_or("-".into(), pct)));
        let mut notes = Vec::new();
        if e.slow {
            notes.push(Span::Alert("slow node"));
        }
        notes.extend(e.notes.iter().map(|n| Span::Text(n.clone())));
        cells.push(Cell(notes));
        g.push(cells, e.slow);
    }
    g
}

/// A workload's spread per hardware group; `None` when no group has more than one node.
pub(crate) fn fleet(w: &WorkloadComparison) -> Option<Grid> {
    if !w.has_fleet() {
        return None;
    }
    let mut g = Grid::new(&[
        ("hardware group", Left),
        ("nodes", Right),
        ("median", Right),
        ("p10", Right),
        ("p90", Right),
        ("spread", Right),
        ("slow nodes", Left),
    ]);
    for f in &w.fleet {
        let slow = f.slow_nodes.join(", ");
        g.push(
            vec![
                Cell::text(f.hardware.label()),
                Cell::figure(f.stats.nodes.to_string()),
                Cell::figure(num(f.stats.median)),
                Cell::figure(num(f.stats.p10)),
                Cell::figure(num(f.stats.p90)),
                Cell::figure(pct(f.stats.spread)),
                if slow.is_empty() {
                    Cell::empty()
                } else {
                    Cell::text(slow)
                },
            ],
            false,
        );
    }
    Some(g)
}

/// Each result's measured peaks; `None` when no result has probes.
pub(crate) fn probes(r: &CompareReport) -> Option<Grid> {
    if r.probes.is_empty() {
        return None;
    }
    let mut g = Grid::new(&[
        ("node", Left),
        ("adapter", Left),
        ("FMA GFLOP/s", Right),
        ("copy GB/s", Right),
    ]);
    for p in &r.probes {
        g.push(
            vec![
                Cell::text(&p.node),
                Cell::text(&p.adapter),
                Cell::figure(num(p.fma_gflops)),
                Cell::figure(num(p.copy_gbps)),
            ],
            false,
        );
    }
    Some(g)
}

/// Tokens/s by weight format: one row per node and workload, one column per format any row
/// has (widest first).
pub(crate) fn by_format(r: &CompareReport) -> Option<Grid> {
    if r.by_format.is_empty() {
        return None;
    }
    let formats: Vec<WeightDtype> = WeightDtype::ALL
        .into_iter()
        .filter(|d| {
            r.by_format
                .iter()
                .any(|row| row.formats.iter().any(|f| f.dtype == *d))
        })
        .collect();
    let mut g = Grid::new(&[("node", Left), ("workload", Left)]);
    for d in &formats {
        g.column(format!("{} tok/s", d.name()), Right);
    }
    for row in &r.by_format {
        let mut cells = vec![Cell::text(&row.node), Cell::text(&row.workload)];
        cells.extend(formats.iter().map(|d| {
            row.formats
                .iter()
                .find(|f| f.dtype == *d)
                .map_or_else(Cell::empty, |f| Cell::figure(num(f.tokens_per_s)))
        }));
        g.push(cells, false);
    }
    Some(g)
}

/// Nodes ranked by their summaries: one row per node and workload, fastest node first.
pub(crate) fn nodes(r: &CompareReport) -> Option<Grid> {
    if r.nodes.is_empty() {
        return None;
    }
    let mut g = Grid::new(&[
        ("workload", Left),
        ("rank", Right),
        ("node", Left),
        ("GPUs", Right),
        ("node tok/s", Right),
        ("slowest GPU tok/s", Right),
        ("spread", Right),
        ("node tok/J", Right),
    ]);
    for ranking in &r.nodes {
        for n in &ranking.nodes {
            g.push(
                vec![
                    Cell::text(&ranking.workload),
                    Cell::figure(n.rank.to_string()),
                    Cell::text(&n.hostname),
                    Cell::figure(n.gpus.to_string()),
                    Cell::figure(num(n.tokens_per_s)),
                    Cell::figure(num(n.slowest_tokens_per_s)),
                    Cell::figure(format!("{:.1}%", n.spread * 100.0)),
                    n.tokens_per_j
                        .map_or_else(Cell::empty, |j| Cell::figure(num(j))),
                ],
                false,
            );
        }
    }
    Some(g)
}

/// The checked workloads with their verdicts.
pub(crate) fn check(r: &CheckReport) -> Grid {
    let (unit, change) = match r.metric {
        CheckMetric::TokensPerS => ("tok/s", "time change"),
        CheckMetric::TokensPerJ => ("tok/J", "tokens/J change"),
    };
    let mut g = Grid::new(&[
        ("workload", Left),
        ("baseline", Right),
        ("current", Right),
        (change, Right),
        ("interval", Right),
        ("from", Left),
        ("verdict", Left),
        ("note", Left),
    ]);
    for w in &r.workloads {
        let (b, c) = check_figures(w, unit);
        let (ch, interval) = change_text(w);
        let verdict = match w.verdict {
            Verdict::Regression | Verdict::Invalid if w.gated => Span::Strong(w.verdict_text()),
            _ => Span::Figure(w.verdict_text()),
        };
        g.push(
            vec![
                Cell::text(&w.id),
                Cell::figure(b),
                Cell::figure(c),
                Cell::figure(ch),
                Cell::figure(interval),
                Cell::text(basis_text(w)),
                Cell(vec![verdict]),
                w.note.as_ref().map_or_else(Cell::empty, Cell::text),
            ],
            false,
        );
    }
    g
}

/// The comparison flat, for CSV: one record per node and workload (ranked, unranked and left
/// out), figures in full precision, enum names as in the JSON. Cost columns only with prices.
pub(crate) fn records(r: &CompareReport) -> Grid {
    let costed = r.prices.is_some();
    let energy_basis = r
        .cost_terms
        .as_ref()
        .map(|t| t.energy_basis.describe())
        .unwrap_or_default();
    let mut g = Grid::new(
        &[
            "workload",
            "phase",
            "preset",
            "dtype",
            "batch",
            "prompt_len",
            "depth",
            "layers_run",
            "metric",
            "status",
            "rank",
            "node",
            "adapter",
            "driver",
            "driver_info",
            "tokens_per_s",
            "tokens_per_j",
            "tokens_per_j_comparable",
            "power_scope",
            "power_provenance",
        ]
        .map(|h| (h, Left)),
    );
    if costed {
        for h in [
            "energy_kwh_per_mtok",
            "energy_cost_per_mtok",
            "hardware_cost_per_mtok",
            "cost_per_mtok",
            "carbon_g_per_mtok",
            "energy_basis",
            "hardware_basis",
        ] {
            g.column(h, Left);
        }
    }
    for h in ["relative_to_best", "slow_node", "notes", "source"] {
        g.column(h, Left);
    }
    for w in &r.workloads {
        for e in &w.entries {
            g.push(entry_record(w, e, costed, &energy_basis), false);
        }
        for x in &w.excluded {
            g.push(excluded_record(w, x, costed), false);
        }
    }
    g
}

fn opt<T: ToString>(x: Option<T>) -> Cell {
    Cell::figure(x.map_or_else(String::new, |v| v.to_string()))
}

/// An enum's name as the JSON writes it ("gpu-board"), "" when absent.
pub(crate) fn json_name<T: serde::Serialize>(v: Option<T>) -> String {
    v.and_then(|v| serde_json::to_value(v).ok())
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn definition(w: &WorkloadComparison) -> Vec<Cell> {
    let k = &w.workload;
    vec![
        Cell::text(&k.id),
        Cell::text(k.phase.map_or("", Phase::name)),
        Cell::text(k.preset.as_deref().unwrap_or("")),
        Cell::text(k.dtype.name()),
        opt(k.batch),
        opt(k.prompt_len),
        opt(k.depth),
        opt(k.layers_run),
        Cell::figure(w.metric.name()),
    ]
}

fn entry_record(w: &WorkloadComparison, e: &Entry, costed: bool, energy_basis: &str) -> Vec<Cell> {
    let mut cells = definition(w);
    cells.extend([
        Cell::figure(if e.rank.is_some() {
            "ranked"
        } else {
            "unranked"
        }),
        opt(e.rank),
        Cell::text(&e.node),
        Cell::text(&e.hardware.adapter),
        Cell::text(&e.hardware.driver),
        Cell::text(&e.hardware.driver_info),
        Cell::figure(e.tokens_per_s.to_string()),
        Cell::figure(full(e.tokens_per_j)),
        Cell::figure(w.tokens_per_j_comparable.to_string()),
        Cell::figure(json_name(e.power_scope)),
        Cell::figure(json_name(e.power_provenance)),
    ]);
    if costed {
        let c = e.cost.clone().unwrap_or_default();
        cells.extend(
            [
                c.energy_kwh_per_mtok,
                c.energy_per_mtok,
                c.hardware_per_mtok,
                c.total_per_mtok,
                c.carbon_g_per_mtok,
            ]
            .map(|v| Cell::figure(full(v))),
        );
        cells.push(Cell::figure(energy_basis));
        cells.push(Cell::text(c.hardware_basis.unwrap_or_default()));
    }
    cells.extend([
        Cell::figure(full(e.relative_to_best)),
        Cell::figure(e.slow.to_string()),
        Cell::text(e.notes.join("; ")),
        Cell::text(&e.source),
    ]);
    cells
}

fn excluded_record(w: &WorkloadComparison, x: &Excluded, costed: bool) -> Vec<Cell> {
    let mut cells = definition(w);
    cells.extend([Cell::figure("excluded"), Cell::empty(), Cell::text(&x.node)]);
    // adapter .. power_provenance, and the cost columns, are empty for a result left out.
    let empty = 8 + if costed { 7 } else { 0 };
    cells.extend(std::iter::repeat_n(Cell::empty(), empty));
    cells.extend([
        Cell::empty(),
        Cell::empty(),
        Cell::text(&x.reason),
        Cell::text(&x.source),
    ]);
    cells
}

/// The serving ranking: one row per node and group, ranked within its group.
pub(crate) fn serving_ranking(r: &CompareReport) -> Option<Grid> {
    let s = r.serving.as_ref()?;
    let at_header = s
        .at_interactivity
        .map(|x| format!("out tok/s/GPU at ≥{} tok/s/user", num(x)));
    let mut g = Grid::new(&[
        ("requests served", Left),
        ("rank", Right),
        ("node", Left),
        ("adapter", Left),
    ]);
    if let Some(h) = &at_header {
        g.column(h.clone(), Right);
    }
    for (h, a) in [
        ("goodput (concurrency: out tok/s/GPU)", Right),
        ("SLO", Left),
        ("best out tok/s/GPU", Right),
        ("source", Left),
    ] {
        g.column(h, a);
    }
    for n in &s.nodes {
        let mut cells = vec![
            Cell::text(n.group.clone()),
            Cell::figure(n.rank.map_or("-".into(), |r| r.to_string())),
            Cell::text(n.node.clone()),
            Cell::text(n.adapter.clone()),
        ];
        if at_header.is_some() {
            cells.push(Cell::figure(
                n.throughput_at.map_or("not reached".to_string(), num),
            ));
        }
        cells.extend([
            Cell::figure(n.goodput.as_ref().map_or("-".into(), |g| {
                format!("{}: {}", g.concurrency, num(g.output_tokens_per_s_per_gpu))
            })),
            n.slo
                .as_ref()
                .map_or(Cell::figure("-"), |x| Cell::text(x.clone())),
            Cell::figure(num(n.best_throughput)),
            Cell::text(n.source.clone()),
        ]);
        g.push(cells, false);
    }
    Some(g)
}

/// One row per serving point of every node: figures in full precision and seconds when
/// `machine` (CSV), else readable.
pub(crate) fn serving_points(r: &CompareReport, machine: bool) -> Option<Grid> {
    use crate::result::{Percentiles, PointSource};
    let s = r.serving.as_ref()?;
    let costed = r.prices.is_some();
    let mut g = Grid::new(&[
        ("requests_served", Left),
        ("node", Left),
        ("concurrency", Right),
        ("figures", Left),
        ("requests_completed", Right),
        ("output_tok_s_per_gpu", Right),
        ("total_tok_s_per_gpu", Right),
        ("tok_s_per_user", Right),
        ("ttft_p50_s", Right),
        ("ttft_p99_s", Right),
        ("tpot_p50_s", Right),
        ("tpot_p99_s", Right),
        ("itl_p99_s", Right),
        ("e2e_p50_s", Right),
        ("e2e_p99_s", Right),
        ("avg_power_w", Right),
        ("j_per_output_token", Right),
    ]);
    if costed {
        let currency = r.currency();
        g.column(
            if currency.is_empty() {
                "cost_per_mtok_output".to_string()
            } else {
                format!("cost_per_mtok_output_{currency}")
            },
            Right,
        );
    }
    g.column("meets_slo", Left);
    let fig = |x: Option<f64>| Cell::figure(if machine { full(x) } else { opt_num(x) });
    let secs = |p: Option<Percentiles>, f: fn(&Percentiles) -> f64| {
        Cell::figure(match p {
            Some(p) if machine => f(&p).to_string(),
            Some(p) => crate::units::duration(f(&p)),
            None if machine => String::new(),
            None => "-".into(),
        })
    };
    for n in &s.nodes {
        for (p, cost) in n.points.iter().zip(&n.cost_per_mtok) {
            let mut cells = vec![
                Cell::text(n.group.clone()),
                Cell::text(n.node.clone()),
                Cell::figure(p.concurrency.to_string()),
                Cell::figure(match p.source {
                    PointSource::Executed => "executed",
                    PointSource::Estimated => "estimated",
                }),
                Cell::figure(p.requests_completed.to_string()),
                fig(Some(p.output_tokens_per_s_per_gpu)),
                fig(Some(p.total_tokens_per_s_per_gpu)),
                fig(Some(p.tokens_per_s_per_user)),
                secs(p.ttft, |p| p.p50_s),
                secs(p.ttft, |p| p.p99_s),
                secs(p.tpot, |p| p.p50_s),
                secs(p.tpot, |p| p.p99_s),
                secs(p.itl, |p| p.p99_s),
                secs(p.e2e, |p| p.p50_s),
                secs(p.e2e, |p| p.p99_s),
                fig(p.avg_power_w),
                fig(p.energy_per_output_token_j),
            ];
            if costed {
                cells.push(fig(*cost));
            }
            cells.push(Cell::figure(match p.meets_slo {
                Some(true) => "yes",
                Some(false) => "no",
                None => "",
            }));
            g.push(cells, false);
        }
    }
    Some(g)
}

/// Other tools' rows, labelled with their tool; never ranked. Figures in full precision and
/// seconds, under snake_case headers, when `machine` (CSV), else readable.
pub(crate) fn references(r: &CompareReport, machine: bool) -> Option<Grid> {
    if r.references.is_empty() {
        return None;
    }
    let columns: [(&str, &str, Align); 12] = [
        ("tool", "tool", Left),
        ("model", "model", Left),
        ("test", "test", Left),
        ("device", "device", Left),
        ("tok/s", "tok_s", Right),
        ("total tok/s", "total_tok_s", Right),
        ("tok/s/user", "tok_s_per_user", Right),
        ("TTFT p50", "ttft_p50_s", Right),
        ("TTFT p99", "ttft_p99_s", Right),
        ("TPOT p50", "tpot_p50_s", Right),
        ("TPOT p99", "tpot_p99_s", Right),
        ("source", "source", Left),
    ];
    let headers: Vec<(&str, Align)> = columns
        .iter()
        .map(|&(readable, csv, align)| (if machine { csv } else { readable }, align))
        .collect();
    let mut g = Grid::new(&headers);
    let fig = |x: Option<f64>| Cell::figure(if machine { full(x) } else { opt_num(x) });
    let secs = |x: Option<f64>| {
        Cell::figure(match x {
            Some(s) if machine => s.to_string(),
            Some(s) => crate::units::duration(s),
            None if machine => String::new(),
            None => "-".into(),
        })
    };
    for x in &r.references {
        g.push(
            vec![
                Cell::figure(x.tool.clone()),
                Cell::text(x.model.clone()),
                Cell::text(x.test.clone()),
                Cell::text(x.device.clone()),
                fig(x.tokens_per_s),
                fig(x.total_tokens_per_s),
                fig(x.tokens_per_s_per_user),
                secs(x.ttft_p50_s),
                secs(x.ttft_p99_s),
                secs(x.tpot_p50_s),
                secs(x.tpot_p99_s),
                Cell::text(x.source.clone()),
            ],
            false,
        );
    }
    Some(g)
}

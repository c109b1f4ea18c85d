//! The node card as JSON (the schema'd document a marketplace ingests) or as one
//! self-contained HTML page with its charts (the same figures for people). Like the report's
//! HTML: inline CSS and SVG, no script, nothing fetched, every string escaped.

use std::fmt::Write as _;

use plotters::style::RGBColor;

use super::html::{Bar, bar_chart, esc, page_start, stacked_chart};
use crate::report::card::{
    CardDocument, CardPhase, CardWorkload, Figure, FigureProvenance, NodeCard,
};
use crate::units::num;

/// The cards as pretty JSON with a final new line.
pub(super) fn json(doc: &CardDocument) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(doc)? + "\n")
}

const CARD_STYLE: &str = "\
.card{border:1px solid #bbb;border-radius:.5rem;padding:0 1rem 1rem;margin:1.5rem 0}\
.card table{font-size:.85em}\
.facts{display:grid;grid-template-columns:max-content 1fr;gap:.15rem 1rem;margin:.5rem 0 1rem}\
.facts dt{color:#555}.facts dd{margin:0;font-family:ui-monospace,monospace;overflow-wrap:anywhere}\
.p{display:inline-block;min-width:1.1em;margin-left:.3em;padding:0 .25em;border-radius:.2em;\
font-size:.75em;text-align:center;color:#fff;vertical-align:middle}\
.p.measured{background:#2f7d4a}.p.declared{background:#b7791f}.p.estimated{background:#6b6bb3}\
.legend{color:#555;font-size:.9em}td.s{white-space:nowrap}";

/// A figure's cell: the value with a badge saying where it came from, and how and when in the
/// tooltip.
fn cell(f: Option<&Figure>) -> String {
    let Some(f) = f else {
        return "<td class=\"n\">-</td>".into();
    };
    let (letter, name) = match f.provenance {
        FigureProvenance::Measured => ("M", "measured"),
        FigureProvenance::Declared => ("D", "declared"),
        FigureProvenance::Estimated => ("E", "estimated"),
    };
    format!(
        "<td class=\"n\">{}<span class=\"p {name}\" title=\"{name} {}: {}\">{letter}</span></td>",
        num(f.value),
        esc(&f.date),
        esc(&f.basis)
    )
}

/// "batch 1 · prompt 512" or "batch 4 · depth 4096".
fn size(w: &CardWorkload) -> String {
    let mut parts = Vec::new();
    if let Some(b) = w.batch {
        parts.push(format!("batch {b}"));
    }
    if let Some(p) = w.prompt_len {
        parts.push(format!("prompt {p}"));
    }
    if let Some(d) = w.depth {
        parts.push(format!("depth {d}"));
    }
    parts.join(" · ")
}

/// The cards as an HTML page.
pub(super) fn html(doc: &CardDocument) -> anyhow::Result<String> {
    let mut h = page_start("tokbench node card", CARD_STYLE);
    let _ = writeln!(
        h,
        "<p>{} node(s); made {}.</p>",
        doc.nodes.len(),
        esc(&doc.generated_at)
    );
    match &doc.cost_model {
        Some(line) => {
            let _ = writeln!(h, "<p>Cost model: {}.</p>", esc(line));
        }
        None => h.push_str("<p>No prices given: no cost or carbon figures.</p>\n"),
    }
    h.push_str(
        "<p class=\"legend\">Badges: <span class=\"p measured\">M</span> measured on the node, \
         <span class=\"p declared\">D</span> declared (given, not measured), \
         <span class=\"p estimated\">E</span> estimated from measured figures and declared \
         prices; hover for how and when.</p>\n",
    );
    for node in &doc.nodes {
        node_card(&mut h, node, doc.currency.as_deref().unwrap_or(""))?;
    }
    h.push_str("</body>\n</html>\n");
    Ok(h)
}

fn node_card(h: &mut String, c: &NodeCard, currency: &str) -> anyhow::Result<()> {
    let a = &c.adapter;
    let _ = writeln!(
        h,
        "<section class=\"card\">\n<h2>{} — {}</h2>\n<dl class=\"facts\">",
        esc(&c.node),
        esc(&a.name)
    );
    for (name, value) in [
        (
            "adapter",
            format!(
                "{} ({}, {}, vendor {:#06x}, device {:#06x})",
                a.name, a.device_type, a.backend, a.vendor_id, a.device_id
            ),
        ),
        ("driver", format!("{} {}", a.driver, a.driver_info)),
        ("fingerprint", c.fingerprint.clone()),
        ("measured", c.measured_at.clone()),
        (
            "tokbench",
            match &c.tool_git_sha {
                Some(sha) => format!("{} ({sha})", c.tool_version),
                None => c.tool_version.clone(),
            },
        ),
        ("source", c.source.clone()),
    ] {
        let _ = writeln!(h, "<dt>{name}</dt><dd>{}</dd>", esc(&value));
    }
    h.push_str("</dl>\n");
    if c.workloads.is_empty() {
        h.push_str("<p>No valid prefill or decode figures.</p>\n</section>\n");
        return Ok(());
    }
    let unit = if currency.is_empty() {
        String::new()
    } else {
        format!(" ({})", esc(currency))
    };
    h.push_str("<div class=\"charts\">\n");
    for (phase, title, color) in [
        (
            CardPhase::Prefill,
            "prefill tokens/s",
            RGBColor(70, 110, 180),
        ),
        (CardPhase::Decode, "decode tokens/s", RGBColor(60, 150, 90)),
    ] {
        let bars: Vec<Bar> = c
            .workloads
            .iter()
            .filter(|w| w.phase == phase)
            .map(|w| Bar {
                label: w.id.clone(),
                value: w.tokens_per_s.value,
                flagged: false,
            })
            .collect();
        if !bars.is_empty() {
            h.push_str(&bar_chart(title, &bars, color)?);
        }
    }
    let costs: Vec<(String, Vec<f64>, bool)> = c
        .workloads
        .iter()
        .filter_map(|w| {
            let energy = w.energy_cost_per_mtok.as_ref().map_or(0.0, |f| f.value);
            let hardware = w.hardware_cost_per_mtok.as_ref().map_or(0.0, |f| f.value);
            (energy + hardware > 0.0).then(|| (w.id.clone(), vec![energy, hardware], false))
        })
        .collect();
    if !costs.is_empty() {
        h.push_str(&stacked_chart(
            &format!("cost per million tokens{}", currency_suffix(currency)),
            &costs,
            &[
                ("energy", RGBColor(220, 150, 40)),
                ("hardware", RGBColor(110, 110, 180)),
            ],
        )?);
    }
    let carbon: Vec<Bar> = c
        .workloads
        .iter()
        .filter_map(|w| {
            w.carbon_g_per_mtok.as_ref().map(|f| Bar {
                label: w.id.clone(),
                value: f.value,
                flagged: false,
            })
        })
        .collect();
    if !carbon.is_empty() {
        h.push_str(&bar_chart(
            "gCO2e per million tokens",
            &carbon,
            RGBColor(120, 120, 120),
        )?);
    }
    h.push_str("</div>\n<table>\n<tr>");
    for head in [
        "phase".to_string(),
        "model shape".into(),
        "format".into(),
        "size".into(),
        "tokens/s".into(),
        "tokens/J".into(),
        "kWh/Mtok".into(),
        format!("energy/Mtok{unit}"),
        format!("hardware/Mtok{unit}"),
        format!("cost/Mtok{unit}"),
        "gCO2e/Mtok".into(),
    ] {
        let _ = write!(h, "<th>{head}</th>");
    }
    h.push_str("</tr>\n");
    for w in &c.workloads {
        let phase = match w.phase {
            CardPhase::Prefill => "prefill",
            CardPhase::Decode => "decode",
        };
        let _ = write!(
            h,
            "<tr><td>{phase}</td><td>{}</td><td>{}</td><td class=\"s\">{}</td>",
            esc(w.model_shape.as_deref().unwrap_or("-")),
            esc(&w.dtype),
            esc(&size(w))
        );
        for f in [
            Some(&w.tokens_per_s),
            w.tokens_per_j.as_ref(),
            w.energy_kwh_per_mtok.as_ref(),
            w.energy_cost_per_mtok.as_ref(),
            w.hardware_cost_per_mtok.as_ref(),
            w.cost_per_mtok.as_ref(),
            w.carbon_g_per_mtok.as_ref(),
        ] {
            h.push_str(&cell(f));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n");
    match &c.serving {
        Some(points) if !points.is_empty() => {
            let _ = writeln!(h, "<p>Serving points: {}.</p>", points.len());
        }
        _ => h.push_str(
            "<p class=\"legend\">Serving throughput at interactivity levels: not measured on \
             this node.</p>\n",
        ),
    }
    h.push_str("</section>\n");
    Ok(())
}

fn currency_suffix(currency: &str) -> String {
    if currency.is_empty() {
        String::new()
    } else {
        format!(" ({currency})")
    }
}

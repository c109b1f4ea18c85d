//! CSV: one record per node and workload, for spreadsheets and scripts, written by the `csv`
//! crate (RFC 4180 quoting). Cost columns appear only with a cost model. Figures are written in
//! full precision.

use super::clean;
use super::grid::{self, Grid, Span};
use crate::report::compare::CompareReport;

/// Text from a result file as a CSV field: control characters escaped, and a text that a
/// spreadsheet would run as a formula (=, +, -, @ first) gets a leading apostrophe.
fn defused(text: &str) -> String {
    let text = clean(text);
    if text.starts_with(['=', '+', '-', '@']) {
        format!("'{text}")
    } else {
        text
    }
}

/// The grid as CSV, header first.
fn render(g: &Grid) -> anyhow::Result<String> {
    let mut w = ::csv::WriterBuilder::new()
        .terminator(::csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    w.write_record(&g.headers)?;
    for row in &g.rows {
        w.write_record(row.cells.iter().map(|cell| {
            cell.join(|span| match span {
                Span::Text(s) | Span::Strong(s) => defused(s),
                Span::Figure(s) => s.clone(),
                Span::Alert(s) => (*s).to_string(),
            })
        }))?;
    }
    Ok(String::from_utf8(w.into_inner()?)?)
}

/// The comparison as CSV: the workload records, the serving points (one record per point) and
/// other tools' reference rows, each table present only when it has rows, a blank line apart.
pub(super) fn compare(r: &CompareReport) -> anyhow::Result<String> {
    let workloads = (!r.workloads.is_empty() || r.serving.is_none()).then(|| grid::records(r));
    let tables = [
        workloads,
        grid::serving_points(r, true),
        grid::references(r, true),
    ];
    let rendered = tables
        .iter()
        .flatten()
        .map(render)
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(rendered.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_field(text: &str) -> String {
        let g = Grid {
            headers: vec!["h".into()],
            align: vec![grid::Align::Left],
            rows: vec![grid::Row {
                cells: vec![grid::Cell(vec![Span::Text(text.into())])],
                flagged: false,
            }],
        };
        render(&g).unwrap().trim_start_matches("h\n").to_string()
    }

    #[test]
    fn fields_are_quoted_and_formulas_defused() {
        assert_eq!(one_field("plain"), "plain\n");
        assert_eq!(one_field("a,b"), "\"a,b\"\n");
        assert_eq!(one_field("say \"hi\""), "\"say \"\"hi\"\"\"\n");
        assert_eq!(one_field("=cmd|' /C calc'!A0"), "'=cmd|' /C calc'!A0\n");
        assert_eq!(one_field("line\nbreak"), "line\\nbreak\n");
    }
}

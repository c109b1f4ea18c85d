//! JSON: the report value itself, pretty-printed. Its fields carry doc comments in
//! `report::compare` and `report::check`; scripts may rely on them.

use serde::Serialize;

/// `report` as pretty JSON with a final newline.
pub(super) fn render<T: Serialize>(report: &T) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(report)? + "\n")
}

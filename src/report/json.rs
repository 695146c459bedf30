//! The JSON report: the [`Report`](super::Report) structure, pretty-printed.
//! Its fields are documented in `docs/report-json.md`.

use super::Report;

/// Renders the report as pretty-printed JSON with a trailing newline.
pub fn render(report: &Report) -> String {
    let mut text = serde_json::to_string_pretty(report).unwrap_or_else(|error| {
        format!("{{\"errors\": [\"the report could not be serialized: {error}\"]}}")
    });
    text.push('\n');
    text
}

//! The JSON Schema (draft 2020-12) of the JSON report, written by hand in
//! `docs/report-schema.json` and printed by `idrift schema`. Tests validate
//! real reports against it, with unknown properties rejected, so a field
//! added to the report without its schema entry fails them.

/// The JSON Schema of the JSON report at [`super::REPORT_SCHEMA_VERSION`].
pub const REPORT_JSON_SCHEMA: &str = include_str!("../../docs/report-schema.json");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_matches_report_version() {
        let schema: serde_json::Value =
            serde_json::from_str(REPORT_JSON_SCHEMA).expect("the schema is JSON");
        assert_eq!(
            schema["properties"]["schema_version"]["const"],
            super::super::REPORT_SCHEMA_VERSION
        );
        assert_eq!(
            schema["$id"],
            format!(
                "urn:idrift:report-schema:{}",
                super::super::REPORT_SCHEMA_VERSION
            )
        );
    }
}

//! The SARIF 2.1.0 report, for code-scanning tools such as GitHub code
//! scanning. Each finding is a result located on the line of its identity's
//! `"id"` in the snapshot file, so the alert shows on the committed snapshot.
//!
//! Each change kind (`identity_added`, `credential_added`, ...) is one rule.
//! The level comes from the severity. The ATT&CK technique, the reason and
//! the response commands are in the result's message and properties.
//! Expected findings carry an external suppression that gives the reason.
//!
//! Paths are relative to the git work tree that contains the snapshot folder
//! (`uriBaseId` `%SRCROOT%`), or to the snapshot folder itself outside git
//! (`uriBaseId` `SNAPSHOTS`). An identity that is not in the snapshot file
//! (a removal, or a `--dry-run` scan) is located on the file without a line.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde_json::{Value, json};

use super::{Report, ScopeStatus, SnapshotLocation};
use crate::judge::{Finding, Severity, Technique};

/// The URI of the SARIF 2.1.0 JSON Schema, as OASIS publishes it.
pub const SARIF_SCHEMA_URI: &str =
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/os/schemas/sarif-schema-2.1.0.json";

/// Base id of paths relative to the git work tree.
const SOURCE_ROOT: &str = "%SRCROOT%";
/// Base id of paths relative to the snapshot folder, outside git.
const SNAPSHOT_ROOT: &str = "SNAPSHOTS";

/// Characters escaped in a path segment of a relative URI.
const PATH_SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b']')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// Renders the report as a SARIF 2.1.0 log with one run.
pub fn render(report: &Report) -> String {
    let mut locator = Locator::new(report.snapshots.as_ref());
    let rules = rules(&report.findings);
    let rule_index: HashMap<&str, usize> = rules
        .iter()
        .enumerate()
        .map(|(index, rule)| (rule.id, index))
        .collect();
    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|finding| result(finding, rule_index[finding.change], &mut locator))
        .collect();

    let mut run = json!({
        "tool": {
            "driver": {
                "name": "idrift",
                "version": report.idrift_version,
                "semanticVersion": report.idrift_version,
                "rules": rules.iter().map(Rule::to_json).collect::<Vec<_>>(),
            }
        },
        "invocations": [invocation(report)],
        "results": results,
        "properties": {
            "command": report.command,
            "summary": report.summary,
        },
    });
    if !locator.base_ids.is_empty() {
        run["originalUriBaseIds"] = json!(locator.base_ids);
    }
    let log = json!({
        "$schema": SARIF_SCHEMA_URI,
        "version": "2.1.0",
        "runs": [run],
    });
    let mut text = serde_json::to_string_pretty(&log).unwrap_or_default();
    text.push('\n');
    text
}

/// One rule: a change kind, with the technique and highest severity that
/// its findings in this run have.
struct Rule<'a> {
    id: &'a str,
    technique: Option<&'a Technique>,
    highest: Severity,
}

impl Rule<'_> {
    fn to_json(&self) -> Value {
        let description = describe_change(self.id);
        let mut help = format!("{description}.");
        let mut tags = vec!["security".to_string()];
        let mut rule = json!({
            "id": self.id,
            "name": rule_name(self.id),
            "shortDescription": { "text": description },
        });
        if let Some(technique) = self.technique {
            help.push_str(&format!(
                " MITRE ATT&CK {} ({}): {}. Each result lists the commands that contain it.",
                technique.id, technique.name, technique.url
            ));
            tags.push(technique.id.to_string());
            rule["helpUri"] = json!(technique.url);
        }
        rule["fullDescription"] = json!({ "text": help });
        rule["help"] = json!({ "text": help });
        rule["properties"] = json!({
            "tags": tags,
            // GitHub code scanning reads a rule's severity from here.
            "security-severity": security_severity(self.highest),
        });
        rule
    }
}

/// Collects one rule per change kind, in order of first appearance.
fn rules(findings: &[Finding]) -> Vec<Rule<'_>> {
    let mut rules: Vec<Rule> = Vec::new();
    for finding in findings {
        match rules.iter_mut().find(|rule| rule.id == finding.change) {
            Some(rule) => {
                rule.highest = rule.highest.max(finding.severity);
                rule.technique = rule.technique.or(finding.technique.as_ref());
            }
            None => rules.push(Rule {
                id: finding.change,
                technique: finding.technique.as_ref(),
                highest: finding.severity,
            }),
        }
    }
    rules
}

fn result(finding: &Finding, rule_index: usize, locator: &mut Locator) -> Value {
    let mut result = json!({
        "ruleId": finding.change,
        "ruleIndex": rule_index,
        "kind": "fail",
        "level": level(finding.severity),
        "message": { "text": message(finding) },
        "locations": [locator.locate(finding)],
        "partialFingerprints": { "idriftFinding/v1": fingerprint(finding) },
        "properties": properties(finding),
    });
    if let Some(reason) = &finding.expected_reason {
        result["suppressions"] = json!([{ "kind": "external", "justification": reason }]);
    }
    result
}

/// Writes severity, reason, technique and response commands into one text,
/// since many viewers show only the message.
fn message(finding: &Finding) -> String {
    let mut text = format!(
        "{} ({}: {}).",
        super::sanitize(&finding.summary),
        finding.severity.as_str(),
        super::sanitize(&finding.severity_reason)
    );
    if let Some(reason) = &finding.expected_reason {
        text.push_str(&format!(" Expected: {}.", super::sanitize(reason)));
    }
    if let Some(technique) = &finding.technique {
        text.push_str(&format!(" ATT&CK {} {}.", technique.id, technique.name));
    }
    if let Some(attribution) = &finding.attribution {
        let actors = attribution.actors().join(", ");
        let text_of_actors = if actors.is_empty() {
            String::new()
        } else {
            format!(" by {actors}")
        };
        text.push_str(&format!(
            " Attribution: {}{}.",
            super::sanitize(&attribution.note),
            super::sanitize(&text_of_actors)
        ));
    }
    if !finding.response.is_empty() {
        let commands: Vec<String> = finding
            .response
            .iter()
            .map(|command| super::sanitize(command))
            .collect();
        text.push_str(&format!(" Respond: {}", commands.join(" ; ")));
    }
    text
}

fn properties(finding: &Finding) -> Value {
    let mut properties = json!({
        "provider": finding.provider,
        "scope": finding.scope,
        "identity_kind": finding.identity_kind,
        "identity_id": finding.identity_id,
        "identity_name": finding.identity_name,
        "severity": finding.severity,
        "severity_reason": finding.severity_reason,
        "expected": finding.expected,
        "evidence": finding.evidence,
        "response": finding.response,
        "security-severity": security_severity(finding.severity),
    });
    let optional = [
        ("arn", finding.arn.as_ref().map(|arn| json!(arn))),
        (
            "expected_reason",
            finding.expected_reason.as_ref().map(|reason| json!(reason)),
        ),
        (
            "technique",
            finding.technique.as_ref().map(|technique| json!(technique)),
        ),
        (
            "attribution",
            finding
                .attribution
                .as_ref()
                .map(|attribution| json!(attribution)),
        ),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            properties[key] = value;
        }
    }
    properties
}

/// Builds a key that stays the same for the same finding across runs, so a
/// code-scanning tool tracks one alert even when the line moves.
fn fingerprint(finding: &Finding) -> String {
    let mut key = format!(
        "{}/{}/{}/{}",
        finding.provider, finding.scope, finding.change, finding.identity_id
    );
    if let Some(credential) = finding.evidence.get("credential_id") {
        key.push('/');
        key.push_str(credential);
    }
    key
}

fn invocation(report: &Report) -> Value {
    let mut notifications: Vec<Value> = report
        .errors
        .iter()
        .map(|error| notification("error", error))
        .collect();
    for scope in &report.scopes {
        let label = format!("{} {}", scope.provider, scope.scope);
        if scope.status == ScopeStatus::Failed {
            let reason = scope.error.as_deref().unwrap_or("unknown error");
            notifications.push(notification("error", &format!("{label} failed: {reason}")));
        }
        for incomplete in &scope.incomplete {
            let text = format!(
                "{label}: {} incomplete: {}",
                incomplete.collection, incomplete.reason
            );
            notifications.push(notification("error", &text));
        }
        for skipped in &scope.not_compared {
            let text = format!(
                "{label}: {} not compared: {}",
                skipped.collection, skipped.reason
            );
            notifications.push(notification("warning", &text));
        }
    }
    json!({
        "executionSuccessful": report.exit_code != crate::exit::FAILED,
        "exitCode": report.exit_code,
        "toolExecutionNotifications": notifications,
    })
}

fn notification(level: &str, text: &str) -> Value {
    json!({ "level": level, "message": { "text": super::sanitize(text) } })
}

/// Maps a severity to a SARIF level: `error` for critical and high,
/// `warning` for medium, `note` for low and info.
fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Info => "note",
    }
}

/// Maps a severity to GitHub's `security-severity` score: above 9.0 is
/// critical, 7.0 to 8.9 high, 4.0 to 6.9 medium, below 4.0 low.
fn security_severity(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "9.5",
        Severity::High => "8.0",
        Severity::Medium => "5.5",
        Severity::Low => "2.0",
        Severity::Info => "0.0",
    }
}

/// Turns a change kind such as `identity_added` into `IdentityAdded`.
fn rule_name(change: &str) -> String {
    change
        .split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or(String::new(), |first| {
                first.to_uppercase().chain(chars).collect()
            })
        })
        .collect()
}

fn describe_change(change: &str) -> &'static str {
    match change {
        "identity_added" => "A new identity appeared",
        "identity_removed" => "An identity was deleted",
        "identity_recreated" => "A name was deleted and created again with a new immutable id",
        "renamed" => "An identity was renamed",
        "path_changed" => "An IAM identity moved to another path",
        "enabled_changed" => "An identity was enabled or disabled",
        "attribute_changed" => "An identity attribute changed, such as an Entra user's type",
        "trust_changed" => "A principal was added to or removed from a role's trust policy",
        "credential_added" => "A new credential on an existing identity",
        "credential_removed" => "A credential was removed",
        "credential_status_changed" => "A credential was activated or deactivated",
        "privilege_added" => "An identity gained an admin grant",
        "privilege_removed" => "An identity lost an admin grant",
        "owner_added" => "A new owner of an app registration or service principal",
        "owner_removed" => "An owner of an app registration or service principal was removed",
        _ => "An identity changed",
    }
}

/// Finds the snapshot file and line of each finding's identity, reading
/// each snapshot file once.
struct Locator<'a> {
    snapshots: Option<&'a SnapshotLocation>,
    files: HashMap<PathBuf, Option<String>>,
    /// `originalUriBaseIds` entries used so far.
    base_ids: BTreeMap<&'static str, Value>,
}

impl<'a> Locator<'a> {
    fn new(snapshots: Option<&'a SnapshotLocation>) -> Locator<'a> {
        Locator {
            snapshots,
            files: HashMap::new(),
            base_ids: BTreeMap::new(),
        }
    }

    fn locate(&mut self, finding: &Finding) -> Value {
        let logical = json!([{
            "name": finding.identity_name,
            "fullyQualifiedName": finding.arn.clone().unwrap_or_else(|| {
                format!("{}/{}/{}", finding.provider, finding.scope, finding.identity_id)
            }),
            "kind": "resource",
        }]);
        let Some(snapshots) = self.snapshots else {
            return json!({ "logicalLocations": logical });
        };
        let file = snapshots.file_for(finding.provider.as_str(), &finding.scope);
        let (uri, base_id, base_uri) = relative_uri(&file, snapshots.root());
        self.base_ids.insert(base_id, json!({ "uri": base_uri }));

        let mut physical = json!({ "artifactLocation": { "uri": uri, "uriBaseId": base_id } });
        let text = self
            .files
            .entry(file.clone())
            .or_insert_with(|| std::fs::read_to_string(&file).ok());
        let kind = serde_json::to_value(finding.identity_kind).unwrap_or_default();
        let line = text.as_deref().and_then(|text| {
            identity_line(text, &finding.identity_id, kind.as_str().unwrap_or(""))
        });
        if let Some(line) = line {
            physical["region"] = json!({ "startLine": line });
        }
        json!({ "physicalLocation": physical, "logicalLocations": logical })
    }
}

/// Returns the 1-based line of an identity record's `"id"` in a snapshot
/// file. The store writes each record pretty-printed, six spaces deep, with
/// the id line followed by the kind line. Matching both lines at that depth
/// skips credential ids and picks the right one of two identities that
/// share an id but not a kind.
pub fn identity_line(text: &str, id: &str, kind: &str) -> Option<usize> {
    let id_line = format!("      \"id\": {},", serde_json::to_string(id).ok()?);
    let kind_line = format!("      \"kind\": {}", serde_json::to_string(kind).ok()?);
    let lines: Vec<&str> = text.lines().collect();
    lines.iter().enumerate().find_map(|(index, line)| {
        let next = lines.get(index + 1)?;
        let matches = *line == id_line && next.trim_end_matches(',') == kind_line;
        matches.then_some(index + 1)
    })
}

/// Returns a file's URI relative to the git work tree that contains it, or
/// else to the snapshot root, with the base id and the base's `file:` URI.
fn relative_uri(file: &Path, snapshot_root: &Path) -> (String, &'static str, String) {
    let file = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    let snapshot_root =
        std::path::absolute(snapshot_root).unwrap_or_else(|_| snapshot_root.to_path_buf());
    let git_root = file
        .ancestors()
        .skip(1)
        .find(|folder| folder.join(".git").exists());
    let (root, base_id) = match git_root {
        Some(root) => (root.to_path_buf(), SOURCE_ROOT),
        None => (snapshot_root, SNAPSHOT_ROOT),
    };
    let relative = file.strip_prefix(&root).unwrap_or(&file);
    (
        encode_path(relative),
        base_id,
        format!("file://{}/", encode_path(&root)),
    )
}

/// Percent-encodes each component of a path and joins them with `/`.
fn encode_path(path: &Path) -> String {
    let segments: Vec<String> = path
        .components()
        .filter_map(|component| match component {
            std::path::Component::Normal(name) => {
                Some(utf8_percent_encode(&name.to_string_lossy(), PATH_SEGMENT).to_string())
            }
            _ => None,
        })
        .collect();
    let joined = segments.join("/");
    if path.has_root() {
        format!("/{joined}")
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SNAPSHOT: &str = r#"{
  "identities": [
    {
      "id": "AIDA1",
      "kind": "aws_user",
      "credentials": [
        {
          "kind": "access_key",
          "id": "AKIA1",
          "status": "Active"
        }
      ]
    },
    {
      "id": "AIDA2",
      "kind": "aws_role"
    },
    {
      "id": "AIDA2",
      "kind": "aws_user"
    }
  ]
}
"#;

    #[test]
    fn identity_line_finds_record_start() {
        assert_eq!(identity_line(SNAPSHOT, "AIDA1", "aws_user"), Some(4));
        assert_eq!(identity_line(SNAPSHOT, "AIDA2", "aws_user"), Some(19));
        assert_eq!(identity_line(SNAPSHOT, "AIDA2", "aws_role"), Some(15));
    }

    #[test]
    fn identity_line_skips_credential_ids() {
        assert_eq!(identity_line(SNAPSHOT, "AKIA1", "access_key"), None);
        assert_eq!(identity_line(SNAPSHOT, "AIDA9", "aws_user"), None);
    }

    #[test]
    fn rule_name_is_pascal_case() {
        assert_eq!(rule_name("identity_added"), "IdentityAdded");
        assert_eq!(rule_name("renamed"), "Renamed");
    }

    #[test]
    fn encode_path_escapes_segments() {
        assert_eq!(encode_path(Path::new("aws/1 2#.json")), "aws/1%202%23.json");
        assert_eq!(encode_path(Path::new("/tmp/a")), "/tmp/a");
    }
}

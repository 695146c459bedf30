//! The OCSF report, for SIEMs: one OCSF 1.5.0 Detection Finding event
//! (`class_uid` 2004, category Findings) per finding, each on its own line
//! (JSON Lines), the form that log shippers and SIEM collectors read.
//!
//! Events use the `cloud` profile. The ATT&CK technique goes in
//! `finding_info.attacks` (technique and sub-technique, tactic Persistence),
//! the identity in `resources`, and the response commands in
//! `remediation.desc`, one a line. The audit events of an attribution go in
//! `evidences`, each with its actor and source address.
//! Fields OCSF has no place for (evidence, the verdict's reasons, the
//! commands as a list, the attribution's note and window) go in `unmapped`.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::Report;
use crate::judge::{Finding, Severity, Technique};
use crate::model::Provider;

/// The OCSF schema version the events follow.
pub const OCSF_VERSION: &str = "1.5.0";
/// OCSF class Detection Finding.
const CLASS_UID: u32 = 2004;
/// OCSF category Findings.
const CATEGORY_UID: u32 = 2;
/// Activity Create: idrift reports each finding once, when it is found.
const ACTIVITY_CREATE: u32 = 1;

/// Renders one Detection Finding per line; a report without findings
/// renders as empty text.
pub fn render(report: &Report) -> String {
    let time = now_millis();
    let mut text = String::new();
    for finding in &report.findings {
        let event = event(report, finding, time);
        text.push_str(&serde_json::to_string(&event).unwrap_or_default());
        text.push('\n');
    }
    text
}

/// Builds the Detection Finding of one finding, timed `time` (milliseconds
/// since the Unix epoch).
pub fn event(report: &Report, finding: &Finding, time: u64) -> Value {
    let (status_id, status) = if finding.expected {
        (3, "Suppressed")
    } else {
        (1, "New")
    };
    let mut event = json!({
        "activity_id": ACTIVITY_CREATE,
        "activity_name": "Create",
        "category_uid": CATEGORY_UID,
        "category_name": "Findings",
        "class_uid": CLASS_UID,
        "class_name": "Detection Finding",
        "type_uid": CLASS_UID * 100 + ACTIVITY_CREATE,
        "type_name": "Detection Finding: Create",
        "severity_id": severity_id(finding.severity),
        "severity": severity_caption(finding.severity),
        "status_id": status_id,
        "status": status,
        "is_alert": finding.needs_attention(),
        "time": time,
        "message": finding.summary,
        "metadata": {
            "version": OCSF_VERSION,
            "profiles": ["cloud"],
            "product": {
                "name": "idrift",
                "vendor_name": "idrift",
                "version": report.idrift_version,
            },
        },
        "cloud": cloud(finding),
        "finding_info": finding_info(finding),
        "resources": [resource(finding)],
        "unmapped": unmapped(report, finding),
    });
    if let Some(reason) = &finding.expected_reason {
        event["status_detail"] = json!(reason);
    }
    if let Some(remediation) = remediation(finding) {
        event["remediation"] = remediation;
    }
    if let Some(attribution) = &finding.attribution {
        add_attribution(&mut event, attribution);
    }
    event
}

/// Puts each audit event in `evidences`: its `actor`, `src_endpoint`, the
/// user agent in `http_request` and the operation in `api`. The event's
/// own `actor` is left out, because the OCSF 1.5.0 schema rejects it in a
/// Detection Finding with only the `cloud` profile. The whole attribution,
/// note and window included, stays in `unmapped`.
fn add_attribution(event: &mut Value, attribution: &crate::attribute::Attribution) {
    let evidences: Vec<Value> = attribution.events.iter().map(evidence).collect();
    if !evidences.is_empty() {
        event["evidences"] = json!(evidences);
    }
    event["unmapped"]["idrift"]["attribution"] = json!(attribution);
}

fn evidence(audit: &crate::attribute::AuditEvent) -> Value {
    let mut evidence = json!({
        "name": audit.event_name,
        "uid": audit.event_id,
        "actor": actor_object(&audit.actor),
        "api": { "operation": audit.event_name },
    });
    if let Some(source) = &audit.source_ip {
        // CloudTrail names a service, not an address, for calls AWS made itself.
        evidence["src_endpoint"] = if source.parse::<std::net::IpAddr>().is_ok() {
            json!({ "ip": source })
        } else {
            json!({ "hostname": source })
        };
    }
    if let Some(agent) = &audit.user_agent {
        evidence["http_request"] = json!({ "user_agent": agent });
    }
    evidence
}

fn actor_object(actor: &str) -> Value {
    json!({ "user": { "uid": actor, "name": actor } })
}

fn finding_info(finding: &Finding) -> Value {
    let mut info = json!({
        "uid": finding_uid(finding),
        "title": finding.summary,
        "desc": finding.severity_reason,
        "types": [finding.change],
        "analytic": {
            "name": finding.change,
            "type_id": 1,
            "type": "Rule",
        },
    });
    if let Some(technique) = &finding.technique {
        info["attacks"] = json!([attack(technique)]);
    }
    info
}

/// Builds a stable id for the finding: the same change to the same
/// identity always gets the same uid.
fn finding_uid(finding: &Finding) -> String {
    let mut uid = format!(
        "idrift:{}:{}:{}:{}",
        finding.provider, finding.scope, finding.change, finding.identity_id
    );
    if let Some(credential) = finding.evidence.get("credential_id") {
        uid.push(':');
        uid.push_str(credential);
    }
    uid
}

/// Splits a sub-technique such as `T1136.003` "Create Account: Cloud
/// Account" into OCSF's technique and sub-technique objects. Account Access
/// Removal (T1531) is a means of Impact (TA0040) in ATT&CK, and Temporary
/// Elevated Cloud Access (T1548.005) one of Privilege Escalation (TA0004);
/// every other technique idrift reports is a means of Persistence (TA0003).
fn attack(technique: &Technique) -> Value {
    let tactic = if technique.id == "T1531" {
        json!({
            "uid": "TA0040",
            "name": "Impact",
            "src_url": "https://attack.mitre.org/tactics/TA0040/",
        })
    } else if technique.id.starts_with("T1548") {
        json!({
            "uid": "TA0004",
            "name": "Privilege Escalation",
            "src_url": "https://attack.mitre.org/tactics/TA0004/",
        })
    } else {
        json!({
            "uid": "TA0003",
            "name": "Persistence",
            "src_url": "https://attack.mitre.org/tactics/TA0003/",
        })
    };
    let Some((parent_id, _)) = technique.id.split_once('.') else {
        return json!({
            "technique": { "uid": technique.id, "name": technique.name, "src_url": technique.url },
            "tactic": tactic,
        });
    };
    let (parent_name, sub_name) = technique
        .name
        .split_once(": ")
        .unwrap_or((technique.name, technique.name));
    json!({
        "technique": {
            "uid": parent_id,
            "name": parent_name,
            "src_url": format!("https://attack.mitre.org/techniques/{parent_id}/"),
        },
        "sub_technique": { "uid": technique.id, "name": sub_name, "src_url": technique.url },
        "tactic": tactic,
    })
}

fn cloud(finding: &Finding) -> Value {
    let (provider, account) = match finding.provider {
        Provider::Aws => (
            "AWS",
            json!({ "uid": finding.scope, "type_id": 10, "type": "AWS Account" }),
        ),
        Provider::Azure => (
            "Azure",
            json!({ "uid": finding.scope, "type_id": 99, "type": "Entra ID tenant" }),
        ),
        Provider::Gcp => (
            "GCP",
            json!({ "uid": finding.scope, "type_id": 11, "type": "GCP Project" }),
        ),
        Provider::Gworkspace => (
            "Google Workspace",
            json!({ "uid": finding.scope, "type_id": 15, "type": "Google Workspace" }),
        ),
    };
    let mut cloud = json!({ "provider": provider, "account": account });
    if finding.provider == Provider::Gcp {
        cloud["project_uid"] = json!(finding.scope);
    }
    cloud
}

fn resource(finding: &Finding) -> Value {
    let mut resource = json!({
        "uid": finding.identity_id,
        "name": finding.identity_name,
        // A `rule_expired` finding is about a config rule, not an identity.
        "type": finding.identity_kind.map_or(json!("idrift_expected_rule"), |kind| json!(kind)),
    });
    if let Some(arn) = &finding.arn {
        resource["uid_alt"] = json!(arn);
    }
    resource
}

/// Puts the response commands in `remediation.desc`, one a line; expected
/// findings have none, and so no remediation.
fn remediation(finding: &Finding) -> Option<Value> {
    if finding.response.is_empty() {
        return None;
    }
    let mut remediation = json!({
        "desc": format!(
            "Run these commands to contain the change:\n{}",
            finding.response.join("\n")
        ),
    });
    if let Some(technique) = &finding.technique {
        remediation["references"] = json!([technique.url]);
    }
    Some(remediation)
}

/// Keeps idrift's own fields; absent values are left out, because OCSF
/// validators reject `null`.
fn unmapped(report: &Report, finding: &Finding) -> Value {
    let mut fields = json!({
        "command": report.command,
        "change": finding.change,
        "severity": finding.severity,
        "severity_reason": finding.severity_reason,
        "expected": finding.expected,
        "evidence": finding.evidence,
        "response": finding.response,
    });
    if let Some(reason) = &finding.expected_reason {
        fields["expected_reason"] = json!(reason);
    }
    if let Some(technique) = &finding.technique {
        fields["technique"] = json!(technique);
    }
    json!({ "idrift": fields })
}

fn severity_id(severity: Severity) -> u8 {
    match severity {
        Severity::Info => 1,
        Severity::Low => 2,
        Severity::Medium => 3,
        Severity::High => 4,
        Severity::Critical => 5,
    }
}

fn severity_caption(severity: Severity) -> &'static str {
    match severity {
        Severity::Info => "Informational",
        Severity::Low => "Low",
        Severity::Medium => "Medium",
        Severity::High => "High",
        Severity::Critical => "Critical",
    }
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tactics_follow_technique() {
        let technique = |id: &'static str| Technique {
            id,
            name: "Parent: Child",
            url: "https://attack.mitre.org/",
        };
        let cases = [
            ("T1136.003", "TA0003"),
            ("T1531", "TA0040"),
            ("T1548.005", "TA0004"),
        ];
        for (id, tactic) in cases {
            assert_eq!(attack(&technique(id))["tactic"]["uid"], tactic, "{id}");
        }
        assert_eq!(attack(&technique("T1548.005"))["technique"]["uid"], "T1548");
    }
}

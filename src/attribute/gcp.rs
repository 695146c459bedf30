//! Google Cloud attribution: Cloud Logging `POST /v2/entries:list` over the
//! project's Admin Activity audit log, filtered by time, by the methods the
//! change maps to (`google.iam.admin.v1.CreateServiceAccount`,
//! `CreateServiceAccountKey`, `SetIamPolicy`, ...) and by the account or
//! member, paged by `nextPageToken` in the request body. Requests go
//! through the collector's [`GcpClient`], which authorizes them and
//! retries throttling.
//!
//! The caller needs `logging.logEntries.list` on the project
//! (roles/logging.viewer). Admin Activity logs are always written, so no
//! Data Access log needs to be enabled.

use std::sync::atomic::AtomicU64;

use serde_json::{Value, json};

use super::{AuditEvent, Lookups, Window, text};
use crate::collect::gcp::client::GcpClient;
use crate::judge::Finding;
use crate::model::{IdentityKind, Provider};
use crate::settings::{AttributionSettings, GcpSettings, RetrySettings};

/// Entries per page.
const PAGE_SIZE: u32 = 100;

/// Pages read for one finding before the lookup is given up.
const MAX_PAGES: usize = 20;

/// The IAM admin methods of service accounts and their keys.
const CREATE_ACCOUNT: &str = "google.iam.admin.v1.CreateServiceAccount";
/// Project-level IAM policy changes, from Resource Manager.
const SET_POLICY: &str = "SetIamPolicy";

/// Attributes the findings of one project.
pub async fn attribute_project(
    gcp: &GcpSettings,
    project: &str,
    window: Window,
    lookups: Lookups,
    settings: &AttributionSettings,
    retry: &RetrySettings,
) -> Vec<(usize, super::Attribution)> {
    let client = crate::collect::gcp::api::new_client(gcp, retry);
    let url = format!("{}/v2/entries:list", settings.gcp_logging_url);
    super::run_lookups(Provider::Gcp, project, window, lookups, |finding| {
        let (client, url) = (client.as_ref(), url.as_str());
        async move {
            let client = client.map_err(Clone::clone)?;
            lookup_finding(client, url, project, window, &finding).await
        }
    })
    .await
}

/// Lists the audit entries of the finding's change in the window.
async fn lookup_finding(
    client: &GcpClient,
    url: &str,
    project: &str,
    window: Window,
    finding: &Finding,
) -> Result<Vec<AuditEvent>, String> {
    let filter = filter_for(project, window, finding);
    let calls = AtomicU64::new(0);
    let mut events = Vec::new();
    let mut token: Option<String> = None;
    for page_number in 1..=MAX_PAGES {
        let mut body = json!({
            "resourceNames": [format!("projects/{project}")],
            "filter": filter,
            "orderBy": "timestamp asc",
            "pageSize": PAGE_SIZE,
        });
        if let Some(token) = &token {
            body["pageToken"] = json!(token);
        }
        let page = client
            .send(
                &calls,
                "log entries",
                reqwest::Method::POST,
                url,
                Some(&body),
            )
            .await
            .map_err(|error| describe_failure(error.message()))?;
        let entries = page["entries"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        events.extend(
            entries
                .iter()
                .filter_map(|entry| parse_entry(entry, project)),
        );
        match text(&page["nextPageToken"]) {
            None => return Ok(events),
            Some(next) if token.as_deref() == Some(next.as_str()) => {
                return Err(format!(
                    "log entries: nextPageToken repeated after page {page_number}"
                ));
            }
            Some(next) => token = Some(next),
        }
    }
    Err(format!(
        "log entries: more than {MAX_PAGES} pages for one finding; narrow the window by \
         scanning more often"
    ))
}

/// Replaces the collector's permission hint, which names its own roles.
fn describe_failure(message: &str) -> String {
    if message.contains("HTTP 403") {
        let base = message
            .split(" (grant the scanning")
            .next()
            .unwrap_or(message);
        format!(
            "{base} (grant the scanning principal logging.logEntries.list on the project, \
             for example roles/logging.viewer)"
        )
    } else {
        message.replace(
            "check iam_url and resource_manager_url",
            "check attribution.gcp.logging_url",
        )
    }
}

/// The IAM API's method that sets a service account's own IAM policy.
// NOTE: the method names of service account policies and workload
// identity providers come from Google's IAM API reference, not from
// recorded audit entries.
const SET_ACCOUNT_POLICY: &str = "google.iam.admin.v1.SetIAMPolicy";

/// The methods that create, change or delete a workload identity provider.
const PROVIDER_METHODS: &[&str] = &[
    "google.iam.v1.WorkloadIdentityPools.CreateWorkloadIdentityPoolProvider",
    "google.iam.v1.WorkloadIdentityPools.UpdateWorkloadIdentityPoolProvider",
    "google.iam.v1.WorkloadIdentityPools.DeleteWorkloadIdentityPoolProvider",
    "google.iam.v1.WorkloadIdentityPools.UndeleteWorkloadIdentityPoolProvider",
];

/// Builds the Logging query of a finding: the project's Admin Activity
/// log, the window, the methods of the change, and the account or member.
fn filter_for(project: &str, window: Window, finding: &Finding) -> String {
    let (methods, subject) = methods_and_subject(finding);
    let methods: Vec<String> = methods.iter().map(|m| quote(m)).collect();
    format!(
        "logName={} AND timestamp>={} AND timestamp<={} AND protoPayload.methodName=({}) AND ({subject})",
        quote(&format!(
            "projects/{project}/logs/cloudaudit.googleapis.com%2Factivity"
        )),
        quote(&window.start_text()),
        quote(&window.end_text()),
        methods.join(" OR ")
    )
}

/// Returns the methods that make a finding's change and the clause that
/// picks the finding's account or member out of their entries.
fn methods_and_subject(finding: &Finding) -> (&'static [&'static str], String) {
    let account = finding.identity_kind == Some(IdentityKind::GcpServiceAccount);
    let email = &finding.identity_name;
    let member = if account {
        format!("serviceAccount:{email}")
    } else {
        finding.identity_id.clone()
    };
    let policy_subject = format!(
        "protoPayload.serviceData.policyDelta.bindingDeltas.member={}",
        quote(&member)
    );
    // A service account's entries name it by email or by unique id.
    let account_subject = format!(
        "protoPayload.response.email={} OR protoPayload.resourceName:{} OR \
         protoPayload.resourceName:{} OR protoPayload.request.name:{}",
        quote(email),
        quote(email),
        quote(&finding.identity_id),
        quote(email)
    );
    if finding.identity_kind == Some(IdentityKind::GcpWorkloadIdentityProvider) {
        let subject = format!("protoPayload.resourceName:{}", quote(&finding.identity_id));
        return (PROVIDER_METHODS, subject);
    }
    // An impersonation grant's id starts with its role; the account's own
    // IAM policy was set.
    let impersonation = finding
        .evidence
        .get("credential_id")
        .is_some_and(|id| id.starts_with("roles/"));
    if account && impersonation && finding.change.starts_with("credential_") {
        return (&[SET_ACCOUNT_POLICY], account_subject);
    }
    let account_methods: &'static [&'static str] = match finding.change {
        "identity_added" | "identity_recreated" => &[CREATE_ACCOUNT],
        "identity_removed" => &["google.iam.admin.v1.DeleteServiceAccount"],
        "credential_added" => &[
            "google.iam.admin.v1.CreateServiceAccountKey",
            "google.iam.admin.v1.UploadServiceAccountKey",
        ],
        "credential_removed" => &["google.iam.admin.v1.DeleteServiceAccountKey"],
        "credential_status_changed" => &[
            "google.iam.admin.v1.EnableServiceAccountKey",
            "google.iam.admin.v1.DisableServiceAccountKey",
        ],
        "enabled_changed" => &[
            "google.iam.admin.v1.EnableServiceAccount",
            "google.iam.admin.v1.DisableServiceAccount",
        ],
        "privilege_added" | "privilege_removed" => return (&[SET_POLICY], policy_subject),
        _ => &[
            "google.iam.admin.v1.PatchServiceAccount",
            "google.iam.admin.v1.UpdateServiceAccount",
        ],
    };
    if account {
        (account_methods, account_subject)
    } else {
        // A principal of the policy appears, changes and goes with the policy.
        (&[SET_POLICY], policy_subject)
    }
}

/// Quotes a value for the Logging query language.
fn quote(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Reads the actor, address, agent, time and id of an audit log entry;
/// returns none for an entry without an `insertId`.
fn parse_entry(entry: &Value, project: &str) -> Option<AuditEvent> {
    let insert_id = text(&entry["insertId"])?;
    let payload = &entry["protoPayload"];
    let metadata = &payload["requestMetadata"];
    let open_command = format!(
        "gcloud logging read {} --project={project} --freshness=400d",
        shell_single_quote(&format!("insertId={}", quote(&insert_id)))
    );
    Some(AuditEvent {
        actor: text(&payload["authenticationInfo"]["principalEmail"])
            .unwrap_or_else(|| "unknown".to_string()),
        source_ip: text(&metadata["callerIp"]),
        user_agent: text(&metadata["callerSuppliedUserAgent"]),
        time: text(&entry["timestamp"]).unwrap_or_default(),
        event_id: insert_id,
        event_name: text(&payload["methodName"]).unwrap_or_default(),
        open_command,
    })
}

fn shell_single_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(kind: IdentityKind, id: &str, name: &str, change: &'static str) -> Finding {
        super::super::test_finding(Provider::Gcp, kind, id, name, change)
    }

    #[test]
    fn impersonation_and_provider_methods() {
        let email = "deploy@p.iam.gserviceaccount.com";
        let kind = IdentityKind::GcpServiceAccount;
        let mut grant = finding(kind, "1001", email, "credential_added");
        grant.evidence.insert(
            "credential_id".to_string(),
            "roles/iam.serviceAccountTokenCreator user:eve@example.net".to_string(),
        );
        let (methods, subject) = methods_and_subject(&grant);
        assert_eq!(methods, [SET_ACCOUNT_POLICY]);
        assert!(subject.contains(email), "{subject}");

        let name = "projects/1/locations/global/workloadIdentityPools/ci/providers/gh";
        let kind = IdentityKind::GcpWorkloadIdentityProvider;
        let provider = finding(kind, name, "ci/gh", "identity_added");
        let (methods, subject) = methods_and_subject(&provider);
        assert_eq!(methods, PROVIDER_METHODS);
        assert!(subject.contains(name), "{subject}");
    }

    #[test]
    fn account_filter_names_method_and_email() {
        let email = "sa@demo-project.iam.gserviceaccount.com";
        let added = finding(
            IdentityKind::GcpServiceAccount,
            "1234",
            email,
            "identity_added",
        );
        let filter = filter_for("demo-project", Window { start: 0, end: 60 }, &added);
        assert!(
            filter
                .contains("protoPayload.methodName=(\"google.iam.admin.v1.CreateServiceAccount\")"),
            "{filter}"
        );
        assert!(
            filter.contains(&format!("protoPayload.response.email=\"{email}\"")),
            "{filter}"
        );
        assert!(
            filter.contains("timestamp>=\"1970-01-01T00:00:00Z\""),
            "{filter}"
        );
    }

    #[test]
    fn principal_filter_names_member() {
        let member = "user:eve@example.com";
        let added = finding(
            IdentityKind::GcpPrincipal,
            member,
            "eve@example.com",
            "identity_added",
        );
        let filter = filter_for("demo-project", Window { start: 0, end: 60 }, &added);
        assert!(
            filter.contains("protoPayload.methodName=(\"SetIamPolicy\")"),
            "{filter}"
        );
        assert!(
            filter.contains(&format!("bindingDeltas.member=\"{member}\"")),
            "{filter}"
        );
        assert_eq!(quote(r#"a"b"#), r#""a\"b""#);
    }
}

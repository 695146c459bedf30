//! Entra ID attribution: Graph `GET /v1.0/auditLogs/directoryAudits`,
//! filtered by the window and by the finding's object id among the
//! event's target resources, paged by `@odata.nextLink`, with the
//! `Retry-After` handling of the collector's Graph client. Events are then
//! kept when their `activityDisplayName` is one the change maps to.
//!
//! The caller needs the `AuditLog.Read.All` application permission, which
//! Microsoft's List directoryAudits reference pairs with `Directory.Read.All`.
//! NOTE: Entra keeps directory audits for 7 days without a Microsoft Entra
//! ID P1 or P2 license and 30 days with one, so a window reaching further
//! back finds nothing older.

use std::sync::Arc;

use serde_json::Value;

use super::{AuditEvent, Lookups, Window, text};
use crate::collect::azure::endpoints;
use crate::collect::azure::graph::{CredentialFactory, GraphClient};
use crate::collect::gcp::client::encode;
use crate::judge::Finding;
use crate::model::{IdentityKind, Provider};
use crate::settings::{AttributionSettings, AzureTenantSettings, RetrySettings};

/// Audits per page. A change has few audits, and 100 is within every
/// Graph list's limit.
const PAGE_SIZE: u32 = 100;

/// Path of the directory audit list.
const AUDITS_PATH: &str = "/v1.0/auditLogs/directoryAudits";

/// Characters escaped in a path segment: all but RFC 3986's unreserved ones.
const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The reason Azure Resource Manager changes carry no actor.
const ARM_UNSEARCHED: &str = "Azure RBAC role assignments and managed identity federated \
    credentials are recorded in the Azure Activity Log, which attribution does not read yet; \
    run `az monitor activity-log list` for the subscription";

/// Returns true for changes made through Azure Resource Manager: RBAC
/// role assignments and the credentials of managed identities, which the
/// directory audit log does not record.
fn is_arm_change(finding: &Finding) -> bool {
    let rbac = finding.evidence.contains_key("role_assignment_id");
    let identity_credential = finding.identity_kind == Some(IdentityKind::AzureManagedIdentity)
        && finding.change.starts_with("credential_");
    rbac || identity_credential
}

/// Attributes the findings of one tenant.
pub async fn attribute_tenant(
    tenant: &AzureTenantSettings,
    window: Window,
    lookups: Lookups,
    settings: &AttributionSettings,
    retry: &RetrySettings,
) -> Vec<(usize, super::Attribution)> {
    let cloud = endpoints(tenant.cloud);
    let base = settings
        .azure_graph_url
        .clone()
        .or_else(|| tenant.graph_url.clone())
        .unwrap_or_else(|| cloud.graph.to_string());
    let factory: CredentialFactory = {
        let (tenant, retry) = (tenant.clone(), retry.clone());
        Box::new(move || crate::collect::azure::api::build_credential(&tenant, &retry))
    };
    let scope = format!("{}/.default", cloud.graph);
    let graph = GraphClient::new(factory, scope, base, retry.clone()).map(Arc::new);

    let tenant_id = tenant.tenant_id.clone();
    let (mut results, lookups) =
        super::split_unsearched(lookups, window, ARM_UNSEARCHED, is_arm_change);

    let searched = super::run_lookups(Provider::Azure, &tenant_id, window, lookups, |finding| {
        let graph = graph.clone();
        async move {
            let graph = graph?;
            lookup_finding(&graph, window, &finding).await
        }
    })
    .await;
    results.extend(searched);
    results
}

/// Lists the audits that target the finding's object in the window, and
/// keeps those of the activities its change maps to.
async fn lookup_finding(
    graph: &GraphClient,
    window: Window,
    finding: &Finding,
) -> Result<Vec<AuditEvent>, String> {
    let filter = format!(
        "activityDateTime ge {} and activityDateTime le {} and targetResources/any(t:t/id eq '{}')",
        window.start_text(),
        window.end_text(),
        finding.identity_id.replace('\'', "''")
    );
    let url = graph.url(&format!(
        "{AUDITS_PATH}?$filter={}&$top={PAGE_SIZE}",
        encode(&filter)
    ));
    let records = graph.list("directory audits", url.clone()).await?;
    let activities = activities(finding);
    let events = records
        .iter()
        .filter(|record| {
            let name = record["activityDisplayName"].as_str().unwrap_or_default();
            activities.is_empty() || activities.contains(&name)
        })
        .filter_map(|record| parse_audit(record, graph))
        .collect();
    Ok(events)
}

/// Reads the actor, address, agent, time and id of a directory audit;
/// returns none for a record without an id.
fn parse_audit(record: &Value, graph: &GraphClient) -> Option<AuditEvent> {
    let id = text(&record["id"])?;
    let user = &record["initiatedBy"]["user"];
    let app = &record["initiatedBy"]["app"];
    let actor = text(&user["userPrincipalName"])
        .or_else(|| text(&app["appId"]))
        .or_else(|| text(&user["id"]))
        .or_else(|| text(&app["servicePrincipalId"]))
        .unwrap_or_else(|| "unknown".to_string());
    let user_agent = record["additionalDetails"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|detail| matches!(detail["key"].as_str(), Some("User-Agent" | "UserAgent")))
        .and_then(|detail| text(&detail["value"]));
    let segment = percent_encoding::utf8_percent_encode(&id, PATH_SEGMENT);
    let url = graph.url(&format!("{AUDITS_PATH}/{segment}"));
    Some(AuditEvent {
        actor,
        source_ip: text(&user["ipAddress"]),
        user_agent,
        time: text(&record["activityDateTime"]).unwrap_or_default(),
        open_command: format!("az rest --method GET --url '{url}'"),
        event_name: text(&record["activityDisplayName"]).unwrap_or_default(),
        event_id: id,
    })
}

/// Returns the audit activities that make a finding's change; empty when
/// any activity on the object counts.
fn activities(finding: &Finding) -> &'static [&'static str] {
    let kind = finding.identity_kind;
    let application = kind == Some(IdentityKind::AzureApplication);
    let user = kind == Some(IdentityKind::AzureUser);
    match finding.change {
        "identity_added" | "identity_recreated" if user => &["Add user"],
        "identity_added" | "identity_recreated" if application => &["Add application"],
        "identity_added" | "identity_recreated" => &["Add service principal"],
        "identity_removed" if user => &["Delete user"],
        "identity_removed" if application => &["Delete application"],
        "identity_removed" => &["Delete service principal"],
        // Federated credentials are recorded as a plain application update.
        "credential_added" | "credential_removed" if application => &[
            "Update application \u{2013} Certificates and secrets management",
            "Update application",
        ],
        "credential_added" => &[
            "Add service principal credentials",
            "Update service principal",
        ],
        "credential_removed" => &[
            "Remove service principal credentials",
            "Update service principal",
        ],
        "privilege_added" => &[
            "Add member to role",
            "Add eligible member to role",
            "Add member to role completed (PIM activation)",
            "Add member to group",
        ],
        "privilege_removed" => &["Remove member from role", "Remove member from group"],
        "owner_added" if application => &["Add owner to application"],
        "owner_added" => &["Add owner to service principal"],
        "owner_removed" if application => &["Remove owner from application"],
        "owner_removed" => &["Remove owner from service principal"],
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_application_maps_to_add_application() {
        let kind = IdentityKind::AzureUser;
        let mut finding =
            super::super::test_finding(Provider::Azure, kind, "id", "ana", "identity_added");
        assert_eq!(activities(&finding), ["Add user"]);
        finding.identity_kind = Some(IdentityKind::AzureApplication);
        assert_eq!(activities(&finding), ["Add application"]);
        finding.change = "credential_added";
        assert!(activities(&finding)[0].ends_with("Certificates and secrets management"));
        finding.change = "attribute_changed";
        assert!(activities(&finding).is_empty());
        finding.change = "owner_added";
        assert_eq!(activities(&finding), ["Add owner to application"]);
    }

    #[test]
    fn arm_changes_skip_directory_audits() {
        let kind = IdentityKind::AzureServicePrincipal;
        let mut finding =
            super::super::test_finding(Provider::Azure, kind, "id", "app", "privilege_added");
        assert!(!is_arm_change(&finding));
        finding.evidence.insert(
            "role_assignment_id".to_string(),
            "/subscriptions/s/ra".to_string(),
        );
        assert!(is_arm_change(&finding));

        let kind = IdentityKind::AzureManagedIdentity;
        let finding =
            super::super::test_finding(Provider::Azure, kind, "id", "mi", "credential_added");
        assert!(is_arm_change(&finding));
    }
}

//! Lists a tenant's Azure RBAC role assignments and user-assigned managed
//! identities through Azure Resource Manager, with a token for the
//! Resource Manager audience from the tenant's azure_identity credential.
//!
//! Role assignments are listed with `$filter=atScope()`, which returns those
//! at the subscription or management group and above it: the ones that
//! control it. Every failure names the subscription or management group and
//! the Reader role that the listing needs.

use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::arm::{
    self, IdentityCredentials, MANAGED_IDENTITY_API_VERSION, ROLE_ASSIGNMENTS_API_VERSION,
    RbacAssignment,
};
use super::graph::GraphClient;
use crate::settings::AzureTenantSettings;

/// Lists the Azure RBAC assignments of every configured subscription and
/// management group. Fails with every listing's failure when any fails,
/// so that no listing reads as empty.
pub async fn list_rbac(
    client: &GraphClient,
    tenant: &AzureTenantSettings,
) -> Result<Vec<RbacAssignment>, String> {
    let mut scopes: Vec<(String, String)> = tenant
        .subscriptions
        .iter()
        .map(|id| (format!("subscription {id}"), format!("/subscriptions/{id}")))
        .collect();
    scopes.extend(tenant.management_groups.iter().map(|id| {
        (
            format!("management group {id}"),
            format!("/providers/Microsoft.Management/managementGroups/{id}"),
        )
    }));

    let mut assignments = Vec::new();
    let mut failures = Vec::new();
    for (label, scope) in scopes {
        let url = client.url(&format!(
            "{scope}/providers/Microsoft.Authorization/roleAssignments?api-version={ROLE_ASSIGNMENTS_API_VERSION}&$filter=atScope()"
        ));
        let what = format!("role assignments of {label}");
        match client.list(&what, url).await {
            Ok(records) => assignments.extend(arm::rbac_assignments(&records)),
            Err(reason) => failures.push(format!(
                "{reason}; idrift needs the Reader role on {label} to list them"
            )),
        }
    }
    if !failures.is_empty() {
        return Err(failures.join("; "));
    }
    // An assignment inherited from a management group appears under each
    // subscription below it.
    assignments.sort_by(|a, b| a.id.cmp(&b.id));
    assignments.dedup_by(|a, b| a.id.eq_ignore_ascii_case(&b.id));
    Ok(assignments)
}

/// Lists the user-assigned managed identities of every configured
/// subscription, then each one's federated credentials, `concurrency` at a time.
pub async fn list_user_assigned(
    client: &Arc<GraphClient>,
    tenant: &AzureTenantSettings,
) -> Result<Vec<IdentityCredentials>, String> {
    let mut identities = Vec::new();
    let mut failures = Vec::new();
    for subscription in &tenant.subscriptions {
        let url = client.url(&format!(
            "/subscriptions/{subscription}/providers/Microsoft.ManagedIdentity/userAssignedIdentities?api-version={MANAGED_IDENTITY_API_VERSION}"
        ));
        let what = format!("user-assigned managed identities of subscription {subscription}");
        match client.list(&what, url).await {
            Ok(records) => identities.extend(arm::user_assigned_identities(&records)),
            Err(reason) => failures.push(format!(
                "{reason}; idrift needs the Reader role on subscription {subscription} to list them"
            )),
        }
    }
    if !failures.is_empty() {
        return Err(failures.join("; "));
    }

    let permits = Arc::new(Semaphore::new(tenant.concurrency.max(1)));
    let mut tasks = JoinSet::new();
    for identity in identities {
        let client = Arc::clone(client);
        let permits = Arc::clone(&permits);
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let listed = list_identity_credentials(&client, &identity).await;
            (identity, listed)
        });
    }
    let mut results = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(result) => results.push(result),
            Err(error) => return Err(format!("a listing task failed: {error}")),
        }
    }
    Ok(results)
}

/// Lists one managed identity's federated credentials.
async fn list_identity_credentials(
    client: &GraphClient,
    identity: &arm::UserAssignedIdentity,
) -> Result<Vec<serde_json::Value>, String> {
    // The id goes into a URL path, so one with other characters is rejected.
    if !arm::is_safe_arm_id(&identity.arm_id) {
        return Err(format!(
            "managed identity {}: its resource id has characters idrift does not put in a URL",
            identity.arm_id
        ));
    }
    let url = client.url(&format!(
        "{}/federatedIdentityCredentials?api-version={MANAGED_IDENTITY_API_VERSION}",
        identity.arm_id
    ));
    let what = format!(
        "federated credentials of managed identity {}",
        identity.name
    );
    client.list(&what, url).await
}

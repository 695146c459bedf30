//! Collects one Entra tenant through Microsoft Graph v1.0.
//!
//! Users, service principals, applications and directory role assignments
//! are listed at once, each with `$select` and `$top`. Once the app listing
//! ends, each app's federated identity credentials are listed,
//! `concurrency` apps at a time. Once all four listings end, each principal
//! of a privileged role assignment that is not a listed user or service
//! principal is read as a group, with its transitive members,
//! `concurrency` groups at a time.
//!
//! The application and service principal listings expand their owners;
//! objects whose expanded owners may be cut short have their owners listed
//! on their own. When the tenant names subscriptions or management groups,
//! Azure RBAC role assignments and user-assigned managed identities are
//! listed through Azure Resource Manager beside the Graph listings.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::{Secret, TokenCredential};
use azure_core::http::{ClientOptions, ExponentialRetryOptions, RetryOptions};
use azure_identity::{
    AzureCliCredential, AzureCliCredentialOptions, ClientCertificateCredential,
    ClientCertificateCredentialOptions, ClientSecretCredential, ClientSecretCredentialOptions,
    ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId,
    WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::{debug, warn};

use super::arm::{IdentityCredentials, RbacAssignment};
use super::arm_listing;
use super::certificate;
use super::graph::{ARM, GraphClient};
use super::inventory::{PrincipalLookup, TenantInventory};
use super::owners::{self, OwnerListing};
use super::records::{self, RoleGroup};
use super::{endpoints, tenant_cloud_configuration};
use crate::collect::{CollectError, Collected, error_chain};
use crate::model::CollectionName;
use crate::settings::{AzureCredentialSource, AzureTenantSettings, RetrySettings, is_guid};

const USER_FIELDS: &str = "id,userPrincipalName,displayName,userType,accountEnabled,createdDateTime,creationType,externalUserState";
const SERVICE_PRINCIPAL_FIELDS: &str = "id,appId,displayName,servicePrincipalType,appOwnerOrganizationId,\
alternativeNames,accountEnabled,passwordCredentials,keyCredentials";
const APPLICATION_FIELDS: &str =
    "id,appId,displayName,createdDateTime,passwordCredentials,keyCredentials";
const GROUP_FIELDS: &str = "id,displayName,isAssignableToRole";

fn unavailable(tenant: &AzureTenantSettings, reason: String) -> CollectError {
    CollectError::Unavailable {
        provider: "azure",
        scope: tenant.tenant_id.clone(),
        reason,
    }
}

/// Client options for azure_identity: the tenant's cloud or authority
/// URL, and the scan's retry policy in place of the crate's default, which
/// takes about 80 s to give up on an unreachable token endpoint.
// The option structs are non-exhaustive or have private fields, so they are
// built from their defaults and then set field by field.
#[allow(clippy::field_reassign_with_default)]
fn client_options(tenant: &AzureTenantSettings, retry: &RetrySettings) -> ClientOptions {
    let mut exponential = ExponentialRetryOptions::default();
    exponential.initial_delay = time_duration(retry.initial_backoff);
    exponential.max_delay = time_duration(retry.max_backoff);
    exponential.max_retries = retry.max_attempts.saturating_sub(1);
    exponential.max_total_elapsed = time_duration(retry.attempt_timeout);
    ClientOptions {
        retry: RetryOptions::exponential(exponential),
        cloud: Some(Arc::new(tenant_cloud_configuration(tenant))),
        ..ClientOptions::default()
    }
}

fn time_duration(duration: Duration) -> azure_core::time::Duration {
    azure_core::time::Duration::try_from(duration).unwrap_or(azure_core::time::Duration::MAX)
}

/// Returns a variable's value, unless it is unset or empty.
fn env_value(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// Resolves `default` to the source that the environment configures, in
/// the order of the Azure SDKs' environment credential (a secret before a
/// certificate), then workload identity, managed identity and the CLI.
fn resolve_source(source: AzureCredentialSource) -> AzureCredentialSource {
    if source != AzureCredentialSource::Default {
        return source;
    }
    let set = |name: &str| env_value(name).is_some();
    if set("AZURE_CLIENT_SECRET") {
        AzureCredentialSource::ClientSecret
    } else if set(certificate::PATH_VARIABLE) {
        AzureCredentialSource::ClientCertificate
    } else if set("AZURE_FEDERATED_TOKEN_FILE") {
        AzureCredentialSource::WorkloadIdentity
    } else if set("IDENTITY_ENDPOINT") || set("MSI_ENDPOINT") {
        AzureCredentialSource::ManagedIdentity
    } else {
        AzureCredentialSource::AzureCli
    }
}

/// Returns the config name of a credential source, for messages.
fn source_name(source: AzureCredentialSource) -> &'static str {
    match source {
        AzureCredentialSource::Default => "default",
        AzureCredentialSource::ClientSecret => "client_secret",
        AzureCredentialSource::ClientCertificate => "client_certificate",
        AzureCredentialSource::WorkloadIdentity => "workload_identity",
        AzureCredentialSource::ManagedIdentity => "managed_identity",
        AzureCredentialSource::AzureCli => "azure_cli",
    }
}

/// Returns the tenant's certificate file: `certificate_path` from the
/// config, else `AZURE_CLIENT_CERTIFICATE_PATH`.
fn certificate_path(tenant: &AzureTenantSettings) -> Option<PathBuf> {
    tenant
        .certificate_path
        .clone()
        .or_else(|| env_value(certificate::PATH_VARIABLE).map(PathBuf::from))
}

/// Builds the tenant's credential with azure_identity.
#[allow(clippy::field_reassign_with_default)]
pub(crate) fn build_credential(
    tenant: &AzureTenantSettings,
    retry: &RetrySettings,
) -> Result<Arc<dyn TokenCredential>, String> {
    let options = client_options(tenant, retry);
    let client_id = tenant
        .client_id
        .clone()
        .or_else(|| env_value("AZURE_CLIENT_ID"));
    let source = resolve_source(tenant.credential);

    let credential: azure_core::Result<Arc<dyn TokenCredential>> = match source {
        AzureCredentialSource::ClientSecret => {
            let secret = std::env::var("AZURE_CLIENT_SECRET").map_err(|_| {
                "credential client_secret needs the secret in AZURE_CLIENT_SECRET".to_string()
            })?;
            let client_id = client_id.ok_or_else(|| {
                "credential client_secret needs client_id in the config or AZURE_CLIENT_ID"
                    .to_string()
            })?;
            let mut secret_options = ClientSecretCredentialOptions::default();
            secret_options.client_options = options;
            ClientSecretCredential::new(
                &tenant.tenant_id,
                client_id,
                Secret::new(secret),
                Some(secret_options),
            )
            .map(|credential| credential as Arc<dyn TokenCredential>)
        }
        AzureCredentialSource::ClientCertificate => {
            return build_certificate_credential(tenant, client_id, options);
        }
        AzureCredentialSource::WorkloadIdentity => {
            let mut workload = WorkloadIdentityCredentialOptions::default();
            workload.credential_options.client_options = options;
            workload.client_id = client_id;
            workload.tenant_id = Some(tenant.tenant_id.clone());
            WorkloadIdentityCredential::new(Some(workload))
                .map(|credential| credential as Arc<dyn TokenCredential>)
        }
        AzureCredentialSource::ManagedIdentity => {
            let mut managed = ManagedIdentityCredentialOptions::default();
            managed.client_options = options;
            managed.user_assigned_id = client_id.map(UserAssignedId::ClientId);
            ManagedIdentityCredential::new(Some(managed))
                .map(|credential| credential as Arc<dyn TokenCredential>)
        }
        AzureCredentialSource::AzureCli | AzureCredentialSource::Default => {
            let mut cli = AzureCliCredentialOptions::default();
            cli.tenant_id = Some(tenant.tenant_id.clone());
            AzureCliCredential::new(Some(cli))
                .map(|credential| credential as Arc<dyn TokenCredential>)
        }
    };
    credential.map_err(|error| {
        format!(
            "cannot set up the {} credential: {error}. Set credential in the tenant's config \
             (client_secret, client_certificate, workload_identity, managed_identity, azure_cli) \
             and the variables it needs",
            source_name(source)
        )
    })
}

/// Builds a client certificate credential from the tenant's certificate
/// file and `AZURE_CLIENT_CERTIFICATE_PASSWORD`.
#[allow(clippy::field_reassign_with_default)]
fn build_certificate_credential(
    tenant: &AzureTenantSettings,
    client_id: Option<String>,
    options: ClientOptions,
) -> Result<Arc<dyn TokenCredential>, String> {
    let path = certificate_path(tenant).ok_or_else(|| {
        format!(
            "credential client_certificate needs the certificate file: set certificate_path \
             in the tenant's config or {}",
            certificate::PATH_VARIABLE
        )
    })?;
    let client_id = client_id.ok_or_else(|| {
        format!(
            "credential client_certificate needs client_id in the config or AZURE_CLIENT_ID: \
             the application (client) id of the app registration that has the certificate {}",
            path.display()
        )
    })?;
    let password = std::env::var(certificate::PASSWORD_VARIABLE).ok();
    let loaded =
        certificate::load(&path, password.as_deref()).map_err(|error| error.to_string())?;
    debug!(
        path = %path.display(),
        thumbprint = loaded.thumbprint(),
        "client certificate read"
    );

    let mut certificate_options = ClientCertificateCredentialOptions::default();
    certificate_options.client_options = options;
    ClientCertificateCredential::new(
        tenant.tenant_id.clone(),
        client_id,
        loaded.into_pkcs12(),
        Some(certificate_options),
    )
    .map(|credential| credential as Arc<dyn TokenCredential>)
    .map_err(|error| {
        format!(
            "cannot set up the client_certificate credential from {}: {}",
            path.display(),
            error_chain(&error)
        )
    })
}

/// Describes what to check when the token endpoint could not be reached.
fn unreachable_hint(tenant: &AzureTenantSettings) -> String {
    match resolve_source(tenant.credential) {
        AzureCredentialSource::ClientSecret
        | AzureCredentialSource::ClientCertificate
        | AzureCredentialSource::WorkloadIdentity => {
            let authority = tenant
                .authority_url
                .as_deref()
                .unwrap_or(endpoints(tenant.cloud).authority);
            format!(
                "check that idrift can reach the authority {authority}: the network, proxy \
                 settings, and SSL_CERT_FILE when it uses a private CA"
            )
        }
        source => format!("check the {} credential's setup", source_name(source)),
    }
}

/// Describes what to check when the token endpoint rejected the credential.
fn token_failure_hint(tenant: &AzureTenantSettings) -> String {
    match resolve_source(tenant.credential) {
        AzureCredentialSource::ClientSecret => {
            "check client_id and AZURE_CLIENT_SECRET, and that the secret has not expired"
                .to_string()
        }
        AzureCredentialSource::ClientCertificate => {
            let path = certificate_path(tenant).unwrap_or_default();
            let password = std::env::var(certificate::PASSWORD_VARIABLE).ok();
            let thumbprint = certificate::load(&path, password.as_deref())
                .map(|loaded| format!(" (SHA-1 thumbprint {})", loaded.thumbprint()))
                .unwrap_or_default();
            format!(
                "check client_id, and that the app registration has the certificate {}{thumbprint} \
                 among its credentials",
                path.display()
            )
        }
        source => format!(
            "check the {} credential's setup and the tenant id",
            source_name(source)
        ),
    }
}

/// Collects one tenant. Fails as a whole only when no credential can be
/// built or the credential gets no token; a failed listing makes its
/// collection incomplete instead.
pub async fn collect_tenant(
    tenant: &AzureTenantSettings,
    retry: &RetrySettings,
) -> Result<Collected, CollectError> {
    let cloud = endpoints(tenant.cloud);
    let scope = format!("{}/.default", cloud.graph);
    let base = tenant
        .graph_url
        .clone()
        .unwrap_or_else(|| cloud.graph.to_string());
    let factory = {
        let (tenant, retry) = (tenant.clone(), retry.clone());
        Box::new(move || build_credential(&tenant, &retry)) as super::graph::CredentialFactory
    };
    let graph = GraphClient::new(factory, scope, base, retry.clone())
        .map_err(|reason| unavailable(tenant, reason))?;
    // One token before the listings, so that a credential that gets none
    // fails the scope with one message instead of every listing.
    graph.check_token().await.map_err(|failure| {
        let hint = match failure.status {
            Some(_) => token_failure_hint(tenant),
            None => unreachable_hint(tenant),
        };
        unavailable(
            tenant,
            format!(
                "the {} credential got no Graph token: {}; {hint}",
                source_name(resolve_source(tenant.credential)),
                failure.reason
            ),
        )
    })?;
    let graph = Arc::new(graph);

    let top = tenant.page_size;
    // Each app's federated credentials are listed as soon as the app
    // listing ends, while the (often much longer) user listing goes on.
    let applications_with_federated = async {
        let url = graph.url(&format!(
            "/v1.0/applications?$select={APPLICATION_FIELDS}&$expand=owners&$top={top}"
        ));
        let listed = graph.list("applications", url).await;
        let owners = match &listed {
            Ok(records) => {
                read_owners(&graph, "applications", records, top, tenant.concurrency).await
            }
            Err(_) => Vec::new(),
        };
        let applications = listed.map(|records| records::applications(&records));
        let federated = match &applications {
            Ok(converted) => {
                let app_ids = converted
                    .identities
                    .iter()
                    .map(|app| app.id.clone())
                    .collect();
                Some(read_federated_credentials(&graph, app_ids, tenant.concurrency).await)
            }
            Err(_) => None,
        };
        (applications, federated, owners)
    };
    let service_principals_with_owners = async {
        let url = graph.url(&format!(
            "/v1.0/servicePrincipals?$select={SERVICE_PRINCIPAL_FIELDS}&$expand=owners&$top={top}"
        ));
        let listed = graph.list("servicePrincipals", url).await;
        let owners = match &listed {
            Ok(records) => {
                read_owners(
                    &graph,
                    "servicePrincipals",
                    records,
                    top,
                    tenant.concurrency,
                )
                .await
            }
            Err(_) => Vec::new(),
        };
        (listed, owners)
    };
    let resource_manager = read_resource_manager(tenant, retry);
    let (
        users,
        (service_principals, service_principal_owners),
        (applications, federated, application_owners),
        assignments,
        resource_manager,
    ) = tokio::join!(
        graph.list("users", graph.url(&format!("/v1.0/users?$select={USER_FIELDS}&$top={top}"))),
        service_principals_with_owners,
        applications_with_federated,
        graph.list(
            "roleAssignments",
            graph.url("/v1.0/roleManagement/directory/roleAssignments?$select=id,principalId,roleDefinitionId,directoryScopeId")
        ),
        resource_manager,
    );

    let mut inventory = TenantInventory::default();
    inventory.add_listing(
        CollectionName::Users,
        users.map(|records| records::users(&records)),
    );
    inventory.add_listing(
        CollectionName::ServicePrincipals,
        service_principals.map(|records| records::service_principals(&records)),
    );
    inventory.add_listing(CollectionName::Applications, applications);
    let mut owner_listings = application_owners;
    owner_listings.extend(service_principal_owners);
    inventory.add_owners(owner_listings);
    match federated {
        Some(federated) => inventory.add_federated_credentials(federated),
        None => inventory.not_collected(
            CollectionName::FederatedCredentials,
            "not listed because the application listing failed",
        ),
    }
    let assignments = assignments.map(|records| records::privileged_assignments(&records));
    // Without every user and service principal listed, a principal that
    // matches neither need not be a group, and Privileges is incomplete anyway.
    let mut principals = Vec::new();
    if inventory.principals_listed() {
        if let Ok(assignments) = &assignments {
            principals.extend(inventory.unmatched_principals(assignments));
        }
        if let Some(ResourceManagerListings { rbac: Ok(rbac), .. }) = &resource_manager {
            principals.extend(inventory.unmatched_rbac_principals(rbac));
        }
    }
    principals.sort();
    principals.dedup();
    let groups = read_groups(&graph, principals, top, tenant.concurrency).await;
    inventory.add_role_assignments(assignments, &groups);

    let mut calls = graph.calls();
    if let Some(listings) = resource_manager {
        let tenant_id = &tenant.tenant_id;
        inventory.add_rbac_assignments(tenant_id, listings.rbac, &groups);
        if !tenant.subscriptions.is_empty() {
            inventory.add_user_assigned_identities(tenant_id, listings.user_assigned);
        }
        calls += listings.calls;
    }
    Ok(inventory.into_collected(&tenant.tenant_id, calls))
}

/// The Azure Resource Manager listings of a tenant, with the requests they took.
struct ResourceManagerListings {
    rbac: Result<Vec<RbacAssignment>, String>,
    user_assigned: Result<Vec<IdentityCredentials>, String>,
    calls: u64,
}

/// Lists Azure RBAC assignments and user-assigned managed identities when
/// the tenant names subscriptions or management groups, and returns `None`
/// otherwise. A credential that gets no Resource Manager token fails both
/// listings, not the tenant.
async fn read_resource_manager(
    tenant: &AzureTenantSettings,
    retry: &RetrySettings,
) -> Option<ResourceManagerListings> {
    if tenant.subscriptions.is_empty() && tenant.management_groups.is_empty() {
        return None;
    }
    let cloud = endpoints(tenant.cloud);
    let scope = format!("{}/.default", cloud.arm);
    let base = tenant
        .arm_url
        .clone()
        .unwrap_or_else(|| cloud.arm.to_string());
    let factory = {
        let (tenant, retry) = (tenant.clone(), retry.clone());
        Box::new(move || build_credential(&tenant, &retry)) as super::graph::CredentialFactory
    };
    let failed = |reason: String| ResourceManagerListings {
        rbac: Err(reason.clone()),
        user_assigned: Err(reason),
        calls: 0,
    };
    let client = match GraphClient::new(factory, scope, base, retry.clone()) {
        Ok(client) => Arc::new(client.with_api(ARM)),
        Err(reason) => return Some(failed(reason)),
    };
    if let Err(failure) = client.check_token().await {
        return Some(failed(format!(
            "the {} credential got no Azure Resource Manager token: {}",
            source_name(resolve_source(tenant.credential)),
            failure.reason
        )));
    }
    let (rbac, user_assigned) = tokio::join!(
        arm_listing::list_rbac(&client, tenant),
        arm_listing::list_user_assigned(&client, tenant),
    );
    Some(ResourceManagerListings {
        rbac,
        user_assigned,
        calls: client.calls(),
    })
}

/// Takes the owners that a listing expanded, and lists again, `concurrency`
/// objects at a time, those of objects whose expanded owners may be cut
/// short. `collection` is `applications` or `servicePrincipals`.
async fn read_owners(
    graph: &Arc<GraphClient>,
    collection: &'static str,
    records: &[Value],
    top: u32,
    concurrency: usize,
) -> Vec<OwnerListing> {
    let (mut listings, to_list) = owners::split_expanded(records);
    if !to_list.is_empty() {
        debug!(
            collection,
            objects = to_list.len(),
            "listing owners one object at a time"
        );
    }
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = JoinSet::new();
    for object_id in to_list {
        let graph = Arc::clone(graph);
        let permits = Arc::clone(&permits);
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let listed = if is_guid(&object_id) {
                let url = graph.url(&format!("/v1.0/{collection}/{object_id}/owners?$top={top}"));
                graph
                    .list(&format!("owners of {collection} {object_id}"), url)
                    .await
            } else {
                Err(format!(
                    "{collection} {object_id}: the object id is not a GUID"
                ))
            };
            (object_id, listed)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(listing) => listings.push(listing),
            Err(error) => listings.push((
                String::new(),
                Err(format!("an owner listing task failed: {error}")),
            )),
        }
    }
    listings
}

/// Reads each principal as a group with its members, `concurrency` at a time.
async fn read_groups(
    graph: &Arc<GraphClient>,
    principal_ids: Vec<String>,
    top: u32,
    concurrency: usize,
) -> HashMap<String, PrincipalLookup> {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = JoinSet::new();
    for principal_id in principal_ids {
        let graph = Arc::clone(graph);
        let permits = Arc::clone(&permits);
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let lookup = read_group(&graph, &principal_id, top).await;
            (principal_id, lookup)
        });
    }
    let mut groups = HashMap::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((principal_id, lookup)) => {
                groups.insert(principal_id, lookup);
            }
            // The principal is then missing from the map, which marks
            // Privileges incomplete.
            Err(error) => warn!(error = %error, "a group reading task failed"),
        }
    }
    groups
}

/// Reads one principal as a group: its record, then its transitive members.
async fn read_group(graph: &GraphClient, principal_id: &str, top: u32) -> PrincipalLookup {
    // The id goes into a URL path, so anything but a GUID is rejected.
    if !is_guid(principal_id) {
        return PrincipalLookup::Failed(format!(
            "group {principal_id}: the role assignment's principal id is not a GUID"
        ));
    }
    let url = graph.url(&format!(
        "/v1.0/groups/{principal_id}?$select={GROUP_FIELDS}"
    ));
    let record = match graph.get(&format!("group {principal_id}"), url).await {
        Ok(Some(record)) => record,
        Ok(None) => return PrincipalLookup::NotFound,
        Err(reason) => return PrincipalLookup::Failed(reason),
    };
    let mut group = RoleGroup::new(principal_id, Some(&record));
    debug!(
        group = %group.label(),
        role_assignable = ?record.get("isAssignableToRole"),
        "reading the members of a group with a privileged role"
    );

    let url = graph.url(&format!(
        "/v1.0/groups/{principal_id}/transitiveMembers?$select=id&$top={top}"
    ));
    let what = format!("members of group {}", group.label());
    match graph.list(&what, url).await {
        Ok(members) => {
            group.members = records::group_members(&members);
            PrincipalLookup::Group(group)
        }
        Err(reason) => PrincipalLookup::Failed(reason),
    }
}

/// Lists the federated identity credentials of each app.
async fn read_federated_credentials(
    graph: &Arc<GraphClient>,
    app_ids: Vec<String>,
    concurrency: usize,
) -> Vec<(String, Result<Vec<Value>, String>)> {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = JoinSet::new();
    for app_id in app_ids {
        let graph = Arc::clone(graph);
        let permits = Arc::clone(&permits);
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let url = graph.url(&format!(
                "/v1.0/applications/{app_id}/federatedIdentityCredentials"
            ));
            let listed = graph
                .list(
                    &format!("federatedIdentityCredentials of application {app_id}"),
                    url,
                )
                .await;
            (app_id, listed)
        });
    }
    let mut results = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(result) => results.push(result),
            Err(error) => results.push((
                String::new(),
                Err(format!("a listing task failed: {error}")),
            )),
        }
    }
    results
}

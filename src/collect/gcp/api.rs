//! Google Cloud collector: application default credentials from
//! google-cloud-auth, the IAM v1 and Cloud Resource Manager v3 REST APIs
//! over reqwest.
//!
//! Google's generated Rust clients (google-cloud-iam-admin-v1 and
//! google-cloud-resourcemanager-v3) would add two large crates and their
//! gax runtime for four calls. Plain REST keeps the build lean, and lets
//! idrift page and retry the way its snapshots need.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use google_cloud_auth::credentials::{Builder, Credentials, impersonated};
use serde_json::{Value, json};
use tokio::task::JoinSet;
use tracing::{info, warn};

use super::client::{CallError, CredentialsFactory, GcpClient, encode};
use super::inventory::{
    AccountPolicyListings, KeyListings, Listing, PoolListings, ProjectListings, assemble,
};
use crate::collect::{CollectError, Collected, error_chain};
use crate::settings::{GcpSettings, RetrySettings};

/// The OAuth scope every call needs.
const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

fn unavailable(scope: &str, reason: String) -> CollectError {
    CollectError::Unavailable {
        provider: "gcp",
        scope: scope.to_string(),
        reason,
    }
}

/// Describes where application default credentials come from, the way
/// google-cloud-auth 1.19 looks: `GOOGLE_APPLICATION_CREDENTIALS`, then
/// gcloud's file, then the metadata server.
pub(crate) fn credential_source() -> String {
    if let Some(path) =
        std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS").filter(|path| !path.is_empty())
    {
        return format!(
            "the credential file {} (GOOGLE_APPLICATION_CREDENTIALS)",
            std::path::Path::new(&path).display()
        );
    }
    let gcloud_file = std::env::var_os("HOME").map(|home| {
        std::path::Path::new(&home).join(".config/gcloud/application_default_credentials.json")
    });
    if let Some(file) = gcloud_file.filter(|file| file.is_file()) {
        return format!(
            "gcloud's application default credentials {}",
            file.display()
        );
    }
    let host = std::env::var("GCE_METADATA_HOST")
        .unwrap_or_else(|_| "metadata.google.internal".to_string());
    format!(
        "the metadata server at {host}, because no GOOGLE_APPLICATION_CREDENTIALS or gcloud \
         credential file was found"
    )
}

/// Builds the credentials: application default credentials, impersonating
/// a service account when the config names one.
fn build_credentials(settings: &GcpSettings, source: &str) -> Result<Credentials, String> {
    let hint = "set GOOGLE_APPLICATION_CREDENTIALS to a valid credential file, or run `gcloud auth \
                application-default login`";
    let builder = Builder::default().with_scopes([CLOUD_PLATFORM_SCOPE]);
    let Some(target) = &settings.impersonate_service_account else {
        return builder.build().map_err(|error| {
            format!(
                "cannot load application default credentials from {source}: {}; {hint}",
                error_chain(&error)
            )
        });
    };
    let source_credentials = Builder::default().build().map_err(|error| {
        format!(
            "cannot load the application default credentials ({source}) that impersonate {target}: {}; {hint}",
            error_chain(&error)
        )
    })?;
    // NOTE: impersonation by target email calls iamcredentials.googleapis.com,
    // and google-cloud-auth 1.19 does not let callers change that address.
    // So the tests cannot reach this path. They test an
    // `impersonated_service_account` credential file, which names its own URL.
    impersonated::Builder::from_source_credentials(source_credentials)
        .with_target_principal(target)
        .with_scopes([CLOUD_PLATFORM_SCOPE])
        .build()
        .map_err(|error| {
            format!(
                "cannot set up impersonation of {target}: {}",
                error_chain(&error)
            )
        })
}

/// Builds a client with the application default credentials (or the
/// impersonated account) of the `[gcp]` settings, as the collector does.
pub(crate) fn new_client(
    settings: &GcpSettings,
    retry: &RetrySettings,
) -> Result<GcpClient, String> {
    let source = credential_source();
    let factory_settings = settings.clone();
    let factory_source = source.clone();
    let factory: CredentialsFactory =
        Box::new(move || build_credentials(&factory_settings, &factory_source));
    GcpClient::new(factory, source, retry, settings.concurrency)
}

/// One Google Cloud project to collect, with the client that every project
/// of the scan shares, so that `concurrency` bounds their requests together.
#[derive(Clone)]
pub struct ProjectScope {
    /// The project id.
    pub project: String,
    client: Arc<GcpClient>,
    settings: Arc<GcpSettings>,
}

impl std::fmt::Debug for ProjectScope {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ProjectScope")
            .field("project", &self.project)
            .finish_non_exhaustive()
    }
}

/// Lists the projects to collect: the configured ones, then those found
/// under each parent to search, less the excluded ones. Returns the parents
/// that could not be searched, or the credential failure, as errors beside
/// the projects.
pub async fn plan_projects(
    settings: &GcpSettings,
    retry: &RetrySettings,
) -> (Vec<ProjectScope>, Vec<CollectError>) {
    let scope_label = || {
        settings
            .projects
            .first()
            .or(settings.discover.first())
            .cloned()
            .unwrap_or_default()
    };
    let client = match new_client(settings, retry) {
        Ok(client) => Arc::new(client),
        Err(reason) => return (Vec::new(), vec![unavailable(&scope_label(), reason)]),
    };

    let mut failures = Vec::new();
    let mut projects: Vec<String> = settings.projects.clone();
    for parent in &settings.discover {
        match discover_projects(&client, settings, parent).await {
            Ok(found) if found.is_empty() => failures.push(unavailable(
                parent,
                format!(
                    "no active project found under {parent}; check the number, and that the \
                     caller can list its projects and folders (roles/browser)"
                ),
            )),
            Ok(found) => {
                info!(parent, projects = found.len(), "found projects");
                for project in found {
                    if !projects.contains(&project) {
                        projects.push(project);
                    }
                }
            }
            Err(error) => failures.push(unavailable(parent, error.message().to_string())),
        }
    }
    projects.retain(|project| !settings.exclude.contains(project));

    let shared_settings = Arc::new(settings.clone());
    let scopes = projects
        .into_iter()
        .map(|project| ProjectScope {
            project,
            client: Arc::clone(&client),
            settings: Arc::clone(&shared_settings),
        })
        .collect();
    (scopes, failures)
}

/// Collects one project planned by [`plan_projects`]. Its requests wait for
/// the client's permits, which every project shares.
pub async fn collect_project_scope(scope: &ProjectScope) -> Result<Collected, CollectError> {
    collect_project(&scope.client, &scope.settings, &scope.project).await
}

/// Collects one project. Fails as a whole only when no token can be had;
/// a failed listing makes its collection incomplete instead.
async fn collect_project(
    client: &Arc<GcpClient>,
    settings: &GcpSettings,
    project: &str,
) -> Result<Collected, CollectError> {
    let calls = Arc::new(AtomicU64::new(0));
    let project_path = format!("projects/{}", encode(project));
    let accounts_url = format!(
        "{}/v1/{project_path}/serviceAccounts?pageSize={}",
        settings.iam_url, settings.page_size
    );
    let policy_url = format!(
        "{}/v3/{project_path}:getIamPolicy",
        settings.resource_manager_url
    );
    let policy_body = json!({"options": {"requestedPolicyVersion": 3}});
    let accounts_what = format!("service accounts of project {project}");
    let policy_what = format!("IAM policy of project {project}");

    let (accounts, policy, workload_identity) = tokio::join!(
        client.list(&calls, &accounts_what, &accounts_url, "accounts"),
        client.send(
            &calls,
            &policy_what,
            reqwest::Method::POST,
            &policy_url,
            Some(&policy_body),
        ),
        list_workload_identity(client, &calls, settings, project),
    );

    // A credential that cannot produce a token fails the whole project.
    let pools_error = workload_identity.as_ref().err();
    for error in [accounts.as_ref().err(), policy.as_ref().err(), pools_error]
        .into_iter()
        .flatten()
    {
        if let CallError::Credentials(reason) = error {
            return Err(unavailable(project, reason.clone()));
        }
    }

    let (accounts, keys, account_policies) = match accounts {
        Ok(records) => {
            let emails: Vec<String> = records
                .iter()
                .filter_map(|record| record.get("email").and_then(Value::as_str))
                .map(str::to_string)
                .collect();
            let (keys, account_policies) = tokio::join!(
                list_keys(client, &calls, settings, project, emails.clone()),
                read_account_policies(client, &calls, settings, project, emails),
            );
            (
                Listing::Found(records),
                Listing::Found(keys),
                Listing::Found(account_policies),
            )
        }
        Err(error) => (
            Listing::Failed(error.message().to_string()),
            Listing::Missing("keys are listed per service account".to_string()),
            Listing::Missing("policies are read per service account".to_string()),
        ),
    };
    let workload_identity = match workload_identity {
        Ok(listings) => Listing::Found(listings),
        Err(error) => Listing::Failed(error.message().to_string()),
    };
    let policy = match policy {
        Ok(policy) => Listing::Found(policy),
        Err(error) => Listing::Failed(error.message().to_string()),
    };
    let listings = ProjectListings {
        accounts,
        keys,
        policy,
        account_policies,
        workload_identity,
    };
    Ok(assemble(project, listings, calls.load(Ordering::Relaxed)))
}

/// Lists the keys of each service account at once; the client bounds the
/// requests in flight.
async fn list_keys(
    client: &Arc<GcpClient>,
    calls: &Arc<AtomicU64>,
    settings: &GcpSettings,
    project: &str,
    emails: Vec<String>,
) -> KeyListings {
    let mut tasks = JoinSet::new();
    for email in emails {
        let client = Arc::clone(client);
        let calls = Arc::clone(calls);
        let url = format!(
            "{}/v1/projects/{}/serviceAccounts/{}/keys",
            settings.iam_url,
            encode(project),
            encode(&email)
        );
        tasks.spawn(async move {
            let what = format!("keys of service account {email}");
            let listed = client
                .send(&calls, &what, reqwest::Method::GET, &url, None)
                .await
                .map_err(|error| error.message().to_string())
                .and_then(|page| keys_of(&what, &page));
            (email, listed)
        });
    }
    join_tasks(tasks, "key listing").await
}

/// Reads the IAM policy of each service account at once, and the client
/// bounds the requests in flight. It requests policy version 3, so that
/// conditional bindings keep their conditions.
async fn read_account_policies(
    client: &Arc<GcpClient>,
    calls: &Arc<AtomicU64>,
    settings: &GcpSettings,
    project: &str,
    emails: Vec<String>,
) -> AccountPolicyListings {
    let mut tasks = JoinSet::new();
    for email in emails {
        let client = Arc::clone(client);
        let calls = Arc::clone(calls);
        let url = format!(
            "{}/v1/projects/{}/serviceAccounts/{}:getIamPolicy",
            settings.iam_url,
            encode(project),
            encode(&email)
        );
        tasks.spawn(async move {
            let what = format!("IAM policy of service account {email}");
            let body = json!({"options": {"requestedPolicyVersion": 3}});
            let read = client
                .send(&calls, &what, reqwest::Method::POST, &url, Some(&body))
                .await
                .map_err(|error| error.message().to_string());
            (email, read)
        });
    }
    join_tasks(tasks, "service account policy").await
}

/// Lists a project's workload identity pools, then each pool's providers.
/// Deleted pools and providers are left out (no `showDeleted`): they accept
/// no tokens, so a deletion reads as a removal, and a restore within
/// Google's 30 days reads as a new provider, which is the alert it deserves.
async fn list_workload_identity(
    client: &Arc<GcpClient>,
    calls: &Arc<AtomicU64>,
    settings: &GcpSettings,
    project: &str,
) -> Result<PoolListings, CallError> {
    let pools_path = format!(
        "{}/v1/projects/{}/locations/global/workloadIdentityPools",
        settings.iam_url,
        encode(project)
    );
    let pools_url = format!("{pools_path}?pageSize={}", settings.page_size);
    let what = format!("workload identity pools of project {project}");
    let pools = client
        .list(calls, &what, &pools_url, "workloadIdentityPools")
        .await?;

    let mut tasks = JoinSet::new();
    for pool in pools.iter().filter_map(|pool| {
        pool.get("name")
            .and_then(Value::as_str)
            .and_then(super::records::pool_id)
    }) {
        let client = Arc::clone(client);
        let calls = Arc::clone(calls);
        let pool = pool.to_string();
        // NOTE: providers are listed for every pool the listing returns.
        // Whether Google serves that call for every kind of pool (such as
        // a pool in trust-domain mode) is untested; a pool it rejects leaves
        // the providers incomplete on every scan.
        let url = format!(
            "{pools_path}/{}/providers?pageSize={}",
            encode(&pool),
            settings.page_size
        );
        let what = format!("providers of workload identity pool {pool} in project {project}");
        tasks.spawn(async move {
            let listed = client
                .list(&calls, &what, &url, "workloadIdentityPoolProviders")
                .await
                .map_err(|error| error.message().to_string());
            (pool, listed)
        });
    }
    let providers = join_tasks(tasks, "provider listing").await;
    Ok(PoolListings { pools, providers })
}

/// Waits for every task and returns their results. A task that panicked
/// is logged and left out, so its account or pool reads as not listed.
async fn join_tasks<T: 'static>(mut tasks: JoinSet<T>, kind: &str) -> Vec<T> {
    let mut results = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(result) => results.push(result),
            Err(error) => warn!(error = %error, kind, "a listing task failed"),
        }
    }
    results
}

/// Returns the `keys` of a key listing; Google leaves an empty list out.
fn keys_of(what: &str, page: &Value) -> Result<Vec<Value>, String> {
    match page.get("keys") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(keys)) => Ok(keys.clone()),
        Some(_) => Err(format!(
            "{what}: the response is malformed: \"keys\" is not a list"
        )),
    }
}

/// Finds the active projects under an organization or folder, walking its
/// folders.
async fn discover_projects(
    client: &GcpClient,
    settings: &GcpSettings,
    parent: &str,
) -> Result<Vec<String>, CallError> {
    let calls = AtomicU64::new(0);
    let mut projects = Vec::new();
    let mut parents = vec![parent.to_string()];
    let mut visited = std::collections::HashSet::new();
    while let Some(current) = parents.pop() {
        if !visited.insert(current.clone()) {
            continue;
        }
        let base = &settings.resource_manager_url;
        let query = encode(&format!("parent:{current}"));
        let found = client
            .list(
                &calls,
                &format!("projects under {current}"),
                &format!("{base}/v3/projects:search?query={query}"),
                "projects",
            )
            .await?;
        for project in &found {
            let id = project.get("projectId").and_then(Value::as_str);
            let state = project.get("state").and_then(Value::as_str);
            match (id, state) {
                (Some(id), Some("ACTIVE")) => projects.push(id.to_string()),
                (Some(id), state) => {
                    info!(
                        project = id,
                        state = state.unwrap_or("unknown"),
                        "skipping a project that is not active"
                    );
                }
                (None, _) => warn!(parent = %current, "skipping a project without a projectId"),
            }
        }
        let folders = client
            .list(
                &calls,
                &format!("folders under {current}"),
                &format!("{base}/v3/folders?parent={}", encode(&current)),
                "folders",
            )
            .await?;
        for folder in &folders {
            let name = folder.get("name").and_then(Value::as_str);
            let state = folder.get("state").and_then(Value::as_str);
            if let (Some(name), Some("ACTIVE")) = (name, state) {
                parents.push(name.to_string());
            }
        }
    }
    projects.sort();
    projects.dedup();
    Ok(projects)
}

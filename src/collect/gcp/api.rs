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
use super::inventory::{KeyListings, Listing, ProjectListings, assemble};
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
fn credential_source() -> String {
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

/// Collects every configured and discovered project. A project that fails
/// as a whole is an error in the list; the others go on.
pub async fn collect_projects(
    settings: &GcpSettings,
    retry: &RetrySettings,
) -> Vec<Result<Collected, CollectError>> {
    let scope_label = || {
        settings
            .projects
            .first()
            .or(settings.discover.first())
            .cloned()
            .unwrap_or_default()
    };
    let source = credential_source();
    let factory_settings = settings.clone();
    let factory_source = source.clone();
    let factory: CredentialsFactory =
        Box::new(move || build_credentials(&factory_settings, &factory_source));
    let client = match GcpClient::new(factory, source, retry, settings.concurrency) {
        Ok(client) => Arc::new(client),
        Err(reason) => return vec![Err(unavailable(&scope_label(), reason))],
    };

    let mut results = Vec::new();
    let mut projects: Vec<String> = settings.projects.clone();
    for parent in &settings.discover {
        match discover_projects(&client, settings, parent).await {
            Ok(found) if found.is_empty() => results.push(Err(unavailable(
                parent,
                format!(
                    "no active project found under {parent}; check the number, and that the \
                     caller can list its projects and folders (roles/browser)"
                ),
            ))),
            Ok(found) => {
                info!(parent, projects = found.len(), "found projects");
                for project in found {
                    if !projects.contains(&project) {
                        projects.push(project);
                    }
                }
            }
            Err(error) => results.push(Err(unavailable(parent, error.message().to_string()))),
        }
    }
    projects.retain(|project| !settings.exclude.contains(project));

    // Every project runs at once; the client's `concurrency` bounds the
    // requests in flight across all of them.
    let mut tasks = JoinSet::new();
    for (position, project) in projects.into_iter().enumerate() {
        let client = Arc::clone(&client);
        let settings = settings.clone();
        tasks.spawn(async move {
            info!(project, "scanning Google Cloud project");
            (
                position,
                collect_project(&client, &settings, &project).await,
            )
        });
    }
    let mut collected = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(result) => collected.push(result),
            Err(error) => warn!(error = %error, "a project task failed"),
        }
    }
    collected.sort_by_key(|(position, _)| *position);
    results.extend(collected.into_iter().map(|(_, result)| result));
    results
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

    let (accounts, policy) = tokio::join!(
        client.list(&calls, &accounts_what, &accounts_url, "accounts"),
        client.send(
            &calls,
            &policy_what,
            reqwest::Method::POST,
            &policy_url,
            Some(&policy_body),
        ),
    );

    // A credential that cannot produce a token fails the whole project.
    for error in [accounts.as_ref().err(), policy.as_ref().err()]
        .into_iter()
        .flatten()
    {
        if let CallError::Credentials(reason) = error {
            return Err(unavailable(project, reason.clone()));
        }
    }

    let (accounts, keys) = match accounts {
        Ok(records) => {
            let emails: Vec<String> = records
                .iter()
                .filter_map(|record| record.get("email").and_then(Value::as_str))
                .map(str::to_string)
                .collect();
            let keys = list_keys(client, &calls, settings, project, emails).await;
            (Listing::Found(records), Listing::Found(keys))
        }
        Err(error) => (
            Listing::Failed(error.message().to_string()),
            Listing::Missing("keys are listed per service account".to_string()),
        ),
    };
    let policy = match policy {
        Ok(policy) => Listing::Found(policy),
        Err(error) => Listing::Failed(error.message().to_string()),
    };
    let listings = ProjectListings {
        accounts,
        keys,
        policy,
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
    let mut results = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(result) => results.push(result),
            Err(error) => warn!(error = %error, "a key listing task failed"),
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

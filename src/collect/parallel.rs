//! Collects several API scopes at once, under a limit across every provider
//! and a limit per provider, and returns the results in the order the
//! scopes were given, whatever order they finish in. AWS accounts, Entra
//! tenants and Google Cloud projects share one pool, so no provider waits
//! for another to finish.
//!
//! Google Cloud projects also share one client, whose `gcp.concurrency`
//! bounds the requests in flight across every project.
//!
//! NOTE: retries need no shared budget here. The AWS SDK's standard retry
//! strategy (aws-smithy-runtime 1.16) keeps one process-wide token bucket
//! per retry partition. Each service's default partition is named after
//! the service and region (`iam-us-east-1`), so every account's IAM client
//! already draws on the same retry budget. Nothing here shares a retry
//! budget between Entra tenants.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::info;

use crate::collect::gcp::api::ProjectScope;
use crate::collect::{CollectError, Collected};
use crate::progress::ScopeProgress;
use crate::settings::{
    AwsAccountSettings, AwsOrganizationSettings, AzureTenantSettings, GcpSettings, RetrySettings,
    ScopeLimits,
};

/// One scope to collect through its provider's API.
#[derive(Debug, Clone)]
pub enum ApiScope {
    /// An AWS account.
    Aws(AwsAccountSettings),
    /// An Entra tenant.
    Azure(AzureTenantSettings),
    /// A Google Cloud project.
    Gcp(ProjectScope),
}

impl ApiScope {
    /// Returns the provider's name, as reports spell it.
    fn provider(&self) -> &'static str {
        match self {
            ApiScope::Aws(_) => "aws",
            ApiScope::Azure(_) => "azure",
            ApiScope::Gcp(_) => "gcp",
        }
    }

    /// Returns the name used for this scope in messages before its id is known.
    pub fn label(&self) -> String {
        match self {
            ApiScope::Aws(account) => account.label(),
            ApiScope::Azure(tenant) => tenant.tenant_id.clone(),
            ApiScope::Gcp(project) => project.project.clone(),
        }
    }

    async fn collect(&self, retry: &RetrySettings) -> Result<Collected, CollectError> {
        match self {
            ApiScope::Aws(account) => {
                info!(account = %account.label(), "scanning AWS account");
                crate::collect::aws::api::collect_account(account, retry).await
            }
            ApiScope::Azure(tenant) => {
                info!(tenant = %tenant.tenant_id, "scanning Entra tenant");
                crate::collect::azure::api::collect_tenant(tenant, retry).await
            }
            ApiScope::Gcp(project) => {
                info!(project = %project.project, "scanning Google Cloud project");
                crate::collect::gcp::api::collect_project_scope(project).await
            }
        }
    }
}

/// Lists the scopes to collect: the configured AWS accounts, then the
/// accounts of each organization sorted by id, then the Entra tenants, then
/// the Google Cloud projects, configured ones first.
///
/// An account already listed, in the config or by an earlier organization,
/// is collected once. Returns the organizations and Google Cloud parents
/// whose accounts or projects could not be listed as errors beside the
/// scopes. AWS organizations and Google Cloud parents are searched at once.
pub async fn plan_scopes(
    aws_accounts: &[AwsAccountSettings],
    aws_organizations: &[AwsOrganizationSettings],
    azure_tenants: &[AzureTenantSettings],
    gcp: &GcpSettings,
    retry: &RetrySettings,
) -> (Vec<ApiScope>, Vec<CollectError>) {
    let gcp_plan = async {
        if gcp.is_empty() {
            return (Vec::new(), Vec::new());
        }
        crate::collect::gcp::api::plan_projects(gcp, retry).await
    };
    let ((accounts, mut failures), (projects, gcp_failures)) = tokio::join!(
        plan_accounts(aws_accounts, aws_organizations, retry),
        gcp_plan
    );
    failures.extend(gcp_failures);

    let scopes = accounts
        .into_iter()
        .map(ApiScope::Aws)
        .chain(azure_tenants.iter().cloned().map(ApiScope::Azure))
        .chain(projects.into_iter().map(ApiScope::Gcp))
        .collect();
    (scopes, failures)
}

/// Lists the configured AWS accounts, then each organization's accounts
/// sorted by id, each account once.
async fn plan_accounts(
    aws_accounts: &[AwsAccountSettings],
    aws_organizations: &[AwsOrganizationSettings],
    retry: &RetrySettings,
) -> (Vec<AwsAccountSettings>, Vec<CollectError>) {
    let mut accounts = aws_accounts.to_vec();
    let mut failures = Vec::new();
    for organization in aws_organizations {
        let mut members = match crate::collect::aws::organizations::discover_accounts(
            organization,
            retry,
        )
        .await
        {
            Ok(members) => members,
            Err(error) => {
                failures.push(error);
                continue;
            }
        };
        members.sort_by(|a, b| a.account_id.cmp(&b.account_id));
        for member in members {
            let listed = accounts.iter().any(|account| {
                account.account_id.is_some() && account.account_id == member.account_id
            });
            if listed {
                info!(account = %member.label(), "skipping an organization account listed before");
                continue;
            }
            accounts.push(member);
        }
    }
    (accounts, failures)
}

/// The outcome of one scope's collection.
#[derive(Debug)]
pub struct ScopeOutcome {
    /// The collected records, or why the scope could not be collected.
    pub result: Result<Collected, CollectError>,
    /// Time spent collecting, waiting for a permit excluded.
    pub duration: Duration,
}

/// Per-provider permits, with the permits shared by every provider.
struct Permits {
    global: Arc<Semaphore>,
    aws: Arc<Semaphore>,
    azure: Arc<Semaphore>,
    gcp: Arc<Semaphore>,
}

impl Permits {
    fn new(limits: ScopeLimits) -> Permits {
        Permits {
            global: Arc::new(Semaphore::new(limits.global.max(1))),
            aws: Arc::new(Semaphore::new(limits.aws.max(1))),
            azure: Arc::new(Semaphore::new(limits.azure.max(1))),
            gcp: Arc::new(Semaphore::new(limits.gcp.max(1))),
        }
    }

    fn for_provider(&self, scope: &ApiScope) -> Arc<Semaphore> {
        match scope {
            ApiScope::Aws(_) => Arc::clone(&self.aws),
            ApiScope::Azure(_) => Arc::clone(&self.azure),
            ApiScope::Gcp(_) => Arc::clone(&self.gcp),
        }
    }
}

/// Collects every scope, at most `limits.global` at once and at most the
/// provider's limit of one provider, and hands each outcome to `finished`
/// with the scope's position in `scopes`, in the order the scopes finish.
///
/// `finished` runs on the caller's task while the other scopes go on
/// collecting, so a scope's snapshot can be written before the slowest
/// scope is done. The caller restores config order from the positions.
pub async fn collect_scopes(
    scopes: Vec<ApiScope>,
    retry: &RetrySettings,
    limits: ScopeLimits,
    mut finished: impl FnMut(usize, ScopeOutcome),
) {
    let permits = Permits::new(limits);
    let mut tasks = JoinSet::new();
    let mut labels = Vec::new();

    for (index, scope) in scopes.into_iter().enumerate() {
        labels.push((scope.provider(), scope.label()));
        let provider_permits = permits.for_provider(&scope);
        let global_permits = Arc::clone(&permits.global);
        let retry = retry.clone();
        tasks.spawn(async move {
            // The provider's permit comes first, so that a scope waiting for
            // its provider holds no permit another provider could use.
            let _provider = provider_permits.acquire_owned().await;
            let _global = global_permits.acquire_owned().await;
            let started = Instant::now();
            let result = scope.collect(&retry).await;
            let outcome = ScopeOutcome {
                result,
                duration: started.elapsed(),
            };
            (index, outcome)
        });
    }

    let progress = ScopeProgress::start(labels.len());
    let mut done = vec![false; labels.len()];
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((index, outcome)) => {
                progress.scope_done(&format!("{} {}", labels[index].0, labels[index].1));
                done[index] = true;
                finished(index, outcome);
            }
            Err(error) => tracing::error!(%error, "a scope's collection task failed"),
        }
    }
    drop(progress);

    let lost = labels
        .into_iter()
        .enumerate()
        .filter(|(index, _)| !done[*index]);
    for (index, (provider, scope)) in lost {
        let outcome = ScopeOutcome {
            result: Err(CollectError::Unavailable {
                provider,
                scope,
                reason: "the collection task failed before it returned; see the log".to_string(),
            }),
            duration: Duration::ZERO,
        };
        finished(index, outcome);
    }
}

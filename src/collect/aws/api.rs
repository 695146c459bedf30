//! Collects one AWS account through the IAM API with the official SDK.
//!
//! Call plan, for an account of U users, R roles, G groups and P policies:
//! `GetAccountAuthorizationDetails` returns users, roles, groups and
//! managed policies with their documents in `ceil((U+R+G+P)/1000)` pages.
//! It returns no credentials, so each user then costs one `ListAccessKeys`
//! and one `GetLoginProfile` call, run concurrently: `2U` calls in all.
//! The credential report would cost three calls per account, but AWS
//! regenerates it at most every four hours, so a key created an hour ago
//! may be missing, and it carries no access key ids, so a rotated key could
//! not be told from the one before it. Freshness and key ids win over the
//! saved calls.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::meta::region::RegionProviderChain;
use aws_config::retry::RetryConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::{debug, warn};

use super::details::{self, AuthorizationDetails, format_timestamp};
use super::{AccessKeyRecord, AccountInventory, identity_center, providers};
use crate::collect::{CollectError, Collected, error_chain};
use crate::model::{CollectionName, Completeness};
use crate::settings::{AwsAccountSettings, IdentityCenterSettings, RetrySettings};

/// Most pages read from one listing before it is declared cut short.
const MAX_PAGES: usize = 10_000;

/// Page size asked of IAM (its maximum).
const PAGE_SIZE: i32 = 1000;

/// Counts HTTP requests sent, retries included, for the scan's statistics.
#[derive(Debug, Clone, Default)]
struct CallCounter(Arc<AtomicU64>);

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "idrift-call-counter"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// One page of a listing: IAM's `Marker` or the JSON services' `NextToken`.
pub(super) struct Page<T> {
    /// The page's records.
    pub(super) items: T,
    /// True when more pages follow.
    pub(super) is_truncated: bool,
    /// The token that requests the next page.
    pub(super) marker: Option<String>,
}

/// Reads every page of a Marker-paged IAM listing.
///
/// Returns the reason the listing is incomplete when a call fails, when IAM
/// reports more pages but sends no Marker, when a Marker repeats (the
/// listing did not advance), or after [`MAX_PAGES`] pages.
pub(super) async fn read_pages<T, F, Fut>(what: &str, mut fetch: F) -> Result<Vec<T>, String>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<Page<T>, String>>,
{
    let mut pages = Vec::new();
    let mut marker: Option<String> = None;
    let mut seen_markers = std::collections::HashSet::new();

    for _ in 0..MAX_PAGES {
        let page = fetch(marker.clone()).await?;
        pages.push(page.items);
        if !page.is_truncated {
            return Ok(pages);
        }

        let next = page.marker.filter(|next| !next.is_empty());
        let Some(next) = next else {
            return Err(format!(
                "{what}: IAM reported more pages (IsTruncated) but sent no Marker after page {}",
                pages.len()
            ));
        };
        if !seen_markers.insert(next.clone()) {
            return Err(format!(
                "{what}: the listing did not advance: the page token (Marker or NextToken) \
                 repeated after page {}",
                pages.len()
            ));
        }
        debug!(what, page = pages.len(), "reading next page");
        marker = Some(next);
    }
    Err(format!("{what}: stopped after {MAX_PAGES} pages"))
}

/// Describes an SDK error by its code and message, with a hint where one helps.
pub(crate) fn describe_error<E>(
    operation: &str,
    error: &SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> String
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if let Some(credentials) = find_credentials_error(error) {
        return format!(
            "{operation} was not sent because no credentials were found ({})",
            error_chain(credentials)
        );
    }
    match error {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let message = service.err().message().unwrap_or("");
            let Some(code) = service.err().code() else {
                // A proxy, or an endpoint that does not serve the API,
                // replies without an AWS error body.
                return format!(
                    "{operation} failed with HTTP {status} and no AWS error code{}; check that \
                     the endpoint (endpoint_url) serves this API",
                    if message.is_empty() {
                        String::new()
                    } else {
                        format!(" ({message})")
                    }
                );
            };
            format!(
                "{operation} failed with HTTP {status} {code}: {message}{}",
                hint_for_code(code)
            )
        }
        SdkError::TimeoutError(_) => format!(
            "{operation} timed out; raise retry.attempt_timeout_seconds or check the network"
        ),
        SdkError::DispatchFailure(_) => format!(
            "{operation} could not reach the endpoint ({}); check endpoint_url, the network and proxy settings",
            error_chain(error)
        ),
        _ => format!("{operation} failed: {}", error_chain(error)),
    }
}

/// Prefixes a failed call's description with the account, and names the
/// IAM action to grant when the call was denied.
pub(super) fn denied_hint(account_id: &str, action: &str, description: &str) -> String {
    if description.contains("AccessDenied") || description.contains("UnauthorizedOperation") {
        format!(
            "account {account_id}: {description}; grant {action} to the scanning principal \
             (see the least-privilege policy in the README)"
        )
    } else {
        format!("account {account_id}: {description}")
    }
}

/// Finds a credential-loading failure among an error's causes.
fn find_credentials_error<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a aws_credential_types::provider::error::CredentialsError> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = current {
        if let Some(found) =
            cause.downcast_ref::<aws_credential_types::provider::error::CredentialsError>()
        {
            return Some(found);
        }
        current = cause.source();
    }
    None
}

fn hint_for_code(code: &str) -> &'static str {
    match code {
        "AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation" => {
            " (grant the scanning principal the read-only IAM policy in the README)"
        }
        "Throttling" | "ThrottlingException" | "TooManyRequestsException" => {
            " (still throttled after every retry; raise retry.max_attempts or scan later)"
        }
        "InvalidClientTokenId"
        | "SignatureDoesNotMatch"
        | "ExpiredToken"
        | "ExpiredTokenException" => {
            " (the credentials are invalid or expired; refresh them, for example with `aws sso login`)"
        }
        _ => "",
    }
}

/// SDK clients for one account, sharing one call counter.
struct Clients {
    iam: aws_sdk_iam::Client,
    sts: aws_sdk_sts::Client,
    calls: CallCounter,
    /// The loaded configuration, for the Identity Center clients.
    config: aws_config::SdkConfig,
}

/// Loads credentials and region from the standard chain, then the config's
/// overrides, then assumes the configured roles in turn.
pub(crate) async fn load_sdk_config(
    account: &AwsAccountSettings,
    retry: &RetrySettings,
) -> aws_config::SdkConfig {
    let region =
        RegionProviderChain::first_try(account.region.clone().map(aws_config::Region::new))
            .or_default_provider()
            .or_else("us-east-1");
    let retry_config = RetryConfig::standard()
        .with_max_attempts(retry.max_attempts)
        .with_initial_backoff(retry.initial_backoff)
        .with_max_backoff(retry.max_backoff);
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(10))
        .operation_attempt_timeout(retry.attempt_timeout)
        .build();

    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(region)
        .retry_config(retry_config)
        .timeout_config(timeouts);
    if let Some(profile) = &account.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(endpoint) = &account.endpoint_url {
        loader = loader.endpoint_url(endpoint);
    }
    let mut config = loader.load().await;

    if let Some(source_role_arn) = &account.source_role_arn {
        config = assume_role(config, source_role_arn, None).await;
    }
    if let Some(role_arn) = &account.role_arn {
        config = assume_role(config, role_arn, account.external_id.as_deref()).await;
    }
    config
}

/// Replaces the config's credentials with those of a role they assume.
/// The role is assumed lazily, on the first call that needs credentials.
async fn assume_role(
    config: aws_config::SdkConfig,
    role_arn: &str,
    external_id: Option<&str>,
) -> aws_config::SdkConfig {
    let mut builder = AssumeRoleProvider::builder(role_arn).session_name("idrift");
    if let Some(external_id) = external_id {
        builder = builder.external_id(external_id);
    }
    let provider = builder.configure(&config).build().await;
    config
        .into_builder()
        .credentials_provider(aws_sdk_iam::config::SharedCredentialsProvider::new(
            provider,
        ))
        .build()
}

/// Builds the clients for one account with [`load_sdk_config`].
async fn build_clients(account: &AwsAccountSettings, retry: &RetrySettings) -> Clients {
    let config = load_sdk_config(account, retry).await;

    let calls = CallCounter::default();
    let iam_config = aws_sdk_iam::config::Builder::from(&config)
        .interceptor(calls.clone())
        .build();
    let sts_config = aws_sdk_sts::config::Builder::from(&config)
        .interceptor(calls.clone())
        .build();
    Clients {
        iam: aws_sdk_iam::Client::from_conf(iam_config),
        sts: aws_sdk_sts::Client::from_conf(sts_config),
        calls,
        config,
    }
}

/// Builds the sso-admin and identitystore clients in Identity Center's
/// region (the account's region unless the config names another).
fn identity_center_clients(
    clients: &Clients,
    settings: &IdentityCenterSettings,
) -> identity_center::Clients {
    let region = settings.region.clone().map(aws_config::Region::new);
    let sso_admin_config = aws_sdk_ssoadmin::config::Builder::from(&clients.config)
        .region(region.clone().or_else(|| clients.config.region().cloned()))
        .interceptor(clients.calls.clone())
        .build();
    let identity_store_config = aws_sdk_identitystore::config::Builder::from(&clients.config)
        .region(region.or_else(|| clients.config.region().cloned()))
        .interceptor(clients.calls.clone())
        .build();
    identity_center::Clients {
        sso_admin: aws_sdk_ssoadmin::Client::from_conf(sso_admin_config),
        identity_store: aws_sdk_identitystore::Client::from_conf(identity_store_config),
    }
}

/// Collects one account. Fails as a whole only when the account cannot be
/// identified (no credentials, unreachable endpoint, wrong account);
/// a failed listing makes its collections incomplete instead.
pub async fn collect_account(
    account: &AwsAccountSettings,
    retry: &RetrySettings,
) -> Result<Collected, CollectError> {
    let clients = build_clients(account, retry).await;
    let account_id = identify_account(&clients, account).await?;
    debug!(account = %account_id, "collecting");

    let mut inventory = AccountInventory::new(account_id.clone());
    match read_authorization_details(&clients.iam).await {
        Ok(details) => inventory.set_details(details),
        Err(reason) => {
            warn!(account = %account_id, reason = %crate::report::sanitize(&reason), "authorization details incomplete");
            inventory.fail_details(&reason);
        }
    }

    let user_names = inventory.user_names();
    if inventory.has_users() {
        let results = read_user_credentials(&clients.iam, user_names, account.concurrency).await;
        apply_user_credentials(&mut inventory, results);
    }

    if !inventory.details_failed() {
        let oidc = providers::list_oidc_providers(&clients.iam, &account_id).await;
        inventory.set_listed(CollectionName::OidcProviders, oidc);
        let saml = providers::list_saml_providers(&clients.iam, &account_id).await;
        inventory.set_listed(CollectionName::SamlProviders, saml);
    }
    if let Some(settings) = &account.identity_center {
        if inventory.details_failed() {
            // Marked, not left out, so that the previous records are kept.
            for name in CollectionName::AWS_IDENTITY_CENTER {
                let reason = "not listed because the authorization details failed".to_string();
                inventory.set_listed(name, Err(reason));
            }
        } else {
            let ic_clients = identity_center_clients(&clients, settings);
            let listing = identity_center::collect(&ic_clients, settings, &account_id).await;
            inventory.set_listed(CollectionName::IdentityCenterUsers, listing.users);
            inventory.set_listed(
                CollectionName::PermissionSetAssignments,
                listing.assignments,
            );
        }
    }

    let calls = clients.calls.0.load(Ordering::Relaxed);
    Ok(inventory.into_collected(calls))
}

/// Reads the caller's account with STS and checks it against the config.
async fn identify_account(
    clients: &Clients,
    account: &AwsAccountSettings,
) -> Result<String, CollectError> {
    let scope = account.label();
    let identity = clients
        .sts
        .get_caller_identity()
        .send()
        .await
        .map_err(|error| CollectError::Unavailable {
            provider: "aws",
            scope: scope.clone(),
            reason: match (find_credentials_error(&error), &account.role_arn) {
                // The role's credentials come from sts:AssumeRole, so its
                // error is the one that stopped the call.
                (Some(credentials), Some(role_arn)) => role_failure(account, role_arn, credentials),
                _ => identify_failure(&describe_error("sts:GetCallerIdentity", &error)),
            },
        })?;

    let found = identity.account().unwrap_or_default().to_string();
    debug!(caller = identity.arn().unwrap_or_default(), account = %found, "caller identity");
    if let Some(expected) = &account.account_id
        && *expected != found
    {
        return Err(CollectError::Unavailable {
            provider: "aws",
            scope,
            reason: format!(
                "the credentials belong to account {found}, not the configured {expected}; \
                 fix account_id or the profile/role in the config"
            ),
        });
    }
    let is_account = found.len() == 12 && found.bytes().all(|b| b.is_ascii_digit());
    if !is_account {
        return Err(CollectError::Unavailable {
            provider: "aws",
            scope,
            reason: format!(
                "sts:GetCallerIdentity returned {found:?}, which is not a 12-digit account id"
            ),
        });
    }
    Ok(found)
}

/// Describes a role that could not be assumed, with the STS error and what to check.
fn role_failure(
    account: &AwsAccountSettings,
    role_arn: &str,
    error: &aws_credential_types::provider::error::CredentialsError,
) -> String {
    let in_account = account
        .account_id
        .as_ref()
        .map(|id| format!(" in account {id}"))
        .unwrap_or_default();
    format!(
        "sts:AssumeRole of {role_arn}{in_account} failed: {}. Check that the role exists, that \
         its trust policy allows the scanning principal to call sts:AssumeRole, and that \
         external_id matches the trust policy's sts:ExternalId condition",
        error_chain(error)
    )
}

/// Adds what to do to a failed `GetCallerIdentity`, by what failed.
fn identify_failure(description: &str) -> String {
    let no_credentials = description.contains("no credentials were found");
    if no_credentials {
        format!(
            "{description}. Make credentials available to the standard chain: AWS_ACCESS_KEY_ID and \
             AWS_SECRET_ACCESS_KEY, AWS_PROFILE or the config's profile, `aws sso login`, or a web \
             identity token"
        )
    } else {
        format!(
            "{description}. The scan needs sts:GetCallerIdentity to learn which account it reads"
        )
    }
}

/// Reads every page of `GetAccountAuthorizationDetails`.
async fn read_authorization_details(
    iam: &aws_sdk_iam::Client,
) -> Result<AuthorizationDetails, String> {
    let pages = read_pages("iam:GetAccountAuthorizationDetails", |marker| async move {
        let output = iam
            .get_account_authorization_details()
            .max_items(PAGE_SIZE)
            .set_marker(marker)
            .send()
            .await
            .map_err(|error| describe_error("iam:GetAccountAuthorizationDetails", &error))?;
        Ok(Page {
            is_truncated: output.is_truncated(),
            marker: output.marker().map(str::to_string),
            items: convert::details_page(&output),
        })
    })
    .await?;

    let mut details = AuthorizationDetails::default();
    for page in pages {
        details.extend(page);
    }
    Ok(details)
}

/// Results of the per-user credential calls for one user.
struct UserCredentials {
    user_name: String,
    access_keys: Result<Vec<AccessKeyRecord>, String>,
    console_password: Result<Option<String>, String>,
}

/// Lists access keys and the login profile of every user, `concurrency` users at a time.
async fn read_user_credentials(
    iam: &aws_sdk_iam::Client,
    user_names: Vec<String>,
    concurrency: usize,
) -> Vec<UserCredentials> {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = JoinSet::new();
    for user_name in user_names {
        let iam = iam.clone();
        let permits = Arc::clone(&permits);
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let access_keys = list_access_keys(&iam, &user_name).await;
            let console_password = get_login_profile(&iam, &user_name).await;
            UserCredentials {
                user_name,
                access_keys,
                console_password,
            }
        });
    }

    let mut results = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(result) => results.push(result),
            Err(error) => {
                // The user is unknown here, so both collections become
                // incomplete rather than silently missing one user's records.
                warn!(%error, "a credential listing task failed");
                let reason = format!("a credential listing task failed: {error}");
                results.push(UserCredentials {
                    user_name: String::new(),
                    access_keys: Err(reason.clone()),
                    console_password: Err(reason),
                });
            }
        }
    }
    results
}

/// Lists one user's access keys. A user deleted since the authorization
/// details were read (`NoSuchEntity`) has no keys.
async fn list_access_keys(
    iam: &aws_sdk_iam::Client,
    user_name: &str,
) -> Result<Vec<AccessKeyRecord>, String> {
    let what = format!("iam:ListAccessKeys for user {user_name}");
    let pages = read_pages(&what, |marker| async move {
        let result = iam
            .list_access_keys()
            .user_name(user_name)
            .set_marker(marker)
            .send()
            .await;
        let output = match result {
            Ok(output) => output,
            Err(error) if is_no_such_entity(&error) => {
                debug!(user_name, "user deleted during the scan; no access keys");
                return Ok(Page {
                    items: Vec::new(),
                    is_truncated: false,
                    marker: None,
                });
            }
            Err(error) => {
                return Err(describe_error(
                    &format!("iam:ListAccessKeys for user {user_name}"),
                    &error,
                ));
            }
        };
        let items = output
            .access_key_metadata()
            .iter()
            .filter_map(convert::access_key)
            .collect();
        Ok(Page {
            items,
            is_truncated: output.is_truncated(),
            marker: output.marker().map(str::to_string),
        })
    })
    .await?;
    Ok(pages.into_iter().flatten().collect())
}

/// Returns the creation time of a user's console password, or `None`
/// when the user has none (IAM signals that only by `NoSuchEntity`).
async fn get_login_profile(
    iam: &aws_sdk_iam::Client,
    user_name: &str,
) -> Result<Option<String>, String> {
    match iam.get_login_profile().user_name(user_name).send().await {
        Ok(output) => Ok(output
            .login_profile()
            .map(|profile| format_timestamp(profile.create_date()))),
        Err(error) if is_no_such_entity(&error) => Ok(None),
        Err(error) => Err(describe_error(
            &format!("iam:GetLoginProfile for user {user_name}"),
            &error,
        )),
    }
}

/// Returns true for IAM's `NoSuchEntity`: the entity was deleted meanwhile.
pub(super) fn is_no_such_entity<E: ProvideErrorMetadata>(
    error: &SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> bool {
    match error {
        SdkError::ServiceError(service) => service.err().code() == Some("NoSuchEntity"),
        _ => false,
    }
}

/// Folds per-user results into the inventory. The first failures become
/// the reason a collection is incomplete, and the users they concern are
/// recorded as unlisted, so the other users are still compared.
fn apply_user_credentials(inventory: &mut AccountInventory, results: Vec<UserCredentials>) {
    let mut key_failures = Vec::new();
    let mut password_failures = Vec::new();
    let mut keys_unlisted = Vec::new();
    let mut passwords_unlisted = Vec::new();
    let mut keys = Vec::new();
    let mut passwords = BTreeMap::new();

    for result in results {
        match result.access_keys {
            Ok(found) => keys.extend(found),
            Err(reason) => {
                key_failures.push(reason);
                keys_unlisted.push(result.user_name.clone());
            }
        }
        match result.console_password {
            Ok(Some(created)) => {
                passwords.insert(result.user_name, Some(created));
            }
            Ok(None) => {}
            Err(reason) => {
                password_failures.push(reason);
                passwords_unlisted.push(result.user_name);
            }
        }
    }

    inventory.set_access_keys(keys, failure_summary(&key_failures));
    inventory.set_console_passwords(passwords, failure_summary(&password_failures));
    inventory.mark_unlisted(CollectionName::AccessKeys, &keys_unlisted);
    inventory.mark_unlisted(CollectionName::ConsolePasswords, &passwords_unlisted);
}

/// Summarizes per-user failures as one reason: the first, and how many more.
fn failure_summary(failures: &[String]) -> Option<String> {
    let first = failures.first()?;
    let more = failures.len() - 1;
    Some(if more == 0 {
        first.clone()
    } else {
        format!("{first} (and {more} more users failed)")
    })
}

/// Completeness of a collection after an attempt, from its failure reason.
pub fn completeness_from(failure: Option<String>) -> Completeness {
    match failure {
        None => Completeness::Complete,
        Some(reason) => Completeness::Incomplete {
            reason,
            kept_previous: false,
            unlisted: Vec::new(),
        },
    }
}

/// Conversions from SDK output types to the shared detail types.
mod convert {
    use serde_json::Value;

    use super::super::AccessKeyRecord;
    use super::details::{
        AttachedPolicy, AuthorizationDetails, GroupDetail, InlinePolicy, InstanceProfileDetail,
        InstanceProfileRole, ManagedPolicy, PolicyVersion, RoleDetail, Tag, UserDetail,
        format_timestamp,
    };
    use aws_sdk_iam::operation::get_account_authorization_details::GetAccountAuthorizationDetailsOutput;
    use aws_sdk_iam::types;

    fn text(value: Option<&str>) -> String {
        value.unwrap_or_default().to_string()
    }

    /// Keeps a URL-encoded document as a JSON string; decoding happens later.
    fn document(value: Option<&str>) -> Value {
        value.map_or(Value::Null, |text| Value::String(text.to_string()))
    }

    fn attached(list: &[types::AttachedPolicy]) -> Vec<AttachedPolicy> {
        list.iter()
            .map(|policy| AttachedPolicy {
                policy_arn: text(policy.policy_arn()),
                policy_name: text(policy.policy_name()),
            })
            .collect()
    }

    fn inline(list: &[types::PolicyDetail]) -> Vec<InlinePolicy> {
        list.iter()
            .map(|policy| InlinePolicy {
                policy_name: text(policy.policy_name()),
                policy_document: document(policy.policy_document()),
            })
            .collect()
    }

    fn tags(list: &[types::Tag]) -> Vec<Tag> {
        list.iter()
            .map(|tag| Tag {
                key: tag.key().to_string(),
                value: tag.value().to_string(),
            })
            .collect()
    }

    /// Converts one page of `GetAccountAuthorizationDetails`.
    pub fn details_page(output: &GetAccountAuthorizationDetailsOutput) -> AuthorizationDetails {
        AuthorizationDetails {
            user_detail_list: output.user_detail_list().iter().map(user).collect(),
            role_detail_list: output.role_detail_list().iter().map(role).collect(),
            group_detail_list: output.group_detail_list().iter().map(group).collect(),
            policies: output.policies().iter().map(policy).collect(),
        }
    }

    fn user(detail: &types::UserDetail) -> UserDetail {
        UserDetail {
            user_id: text(detail.user_id()),
            user_name: text(detail.user_name()),
            path: detail.path().map(str::to_string),
            arn: detail.arn().map(str::to_string),
            create_date: detail.create_date().map(format_timestamp),
            group_list: detail.group_list().to_vec(),
            attached_managed_policies: attached(detail.attached_managed_policies()),
            user_policy_list: inline(detail.user_policy_list()),
            tags: tags(detail.tags()),
        }
    }

    fn role(detail: &types::RoleDetail) -> RoleDetail {
        RoleDetail {
            role_id: text(detail.role_id()),
            role_name: text(detail.role_name()),
            path: detail.path().map(str::to_string),
            arn: detail.arn().map(str::to_string),
            create_date: detail.create_date().map(format_timestamp),
            assume_role_policy_document: document(detail.assume_role_policy_document()),
            attached_managed_policies: attached(detail.attached_managed_policies()),
            role_policy_list: inline(detail.role_policy_list()),
            tags: tags(detail.tags()),
            instance_profile_list: detail
                .instance_profile_list()
                .iter()
                .map(instance_profile)
                .collect(),
        }
    }

    fn instance_profile(profile: &types::InstanceProfile) -> InstanceProfileDetail {
        InstanceProfileDetail {
            instance_profile_id: profile.instance_profile_id().to_string(),
            instance_profile_name: profile.instance_profile_name().to_string(),
            path: Some(profile.path().to_string()),
            arn: Some(profile.arn().to_string()),
            create_date: Some(format_timestamp(profile.create_date())),
            roles: profile
                .roles()
                .iter()
                .map(|role| InstanceProfileRole {
                    role_name: role.role_name().to_string(),
                })
                .collect(),
        }
    }

    fn group(detail: &types::GroupDetail) -> GroupDetail {
        GroupDetail {
            group_name: text(detail.group_name()),
            attached_managed_policies: attached(detail.attached_managed_policies()),
            group_policy_list: inline(detail.group_policy_list()),
        }
    }

    fn policy(detail: &types::ManagedPolicyDetail) -> ManagedPolicy {
        ManagedPolicy {
            arn: text(detail.arn()),
            policy_version_list: detail
                .policy_version_list()
                .iter()
                .map(|version| PolicyVersion {
                    document: document(version.document()),
                    is_default_version: version.is_default_version(),
                })
                .collect(),
        }
    }

    /// Converts one access key's metadata; keys without an id are dropped.
    pub fn access_key(metadata: &types::AccessKeyMetadata) -> Option<AccessKeyRecord> {
        Some(AccessKeyRecord {
            user_name: metadata.user_name()?.to_string(),
            access_key_id: metadata.access_key_id()?.to_string(),
            status: metadata.status().map(|status| status.as_str().to_string()),
            created: metadata.create_date().map(format_timestamp),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(items: u32, is_truncated: bool, marker: Option<&str>) -> Result<Page<u32>, String> {
        Ok(Page {
            items,
            is_truncated,
            marker: marker.map(str::to_string),
        })
    }

    #[tokio::test]
    async fn pages_follow_markers_to_the_end() {
        let pages = read_pages("test", |marker| async move {
            match marker.as_deref() {
                None => page(1, true, Some("a")),
                Some("a") => page(2, true, Some("b")),
                _ => page(3, false, None),
            }
        })
        .await
        .unwrap();
        assert_eq!(pages, vec![1, 2, 3]);
    }

    #[tokio::test]
    async fn pages_stop_on_repeated_marker() {
        let error = read_pages("test", |_| async { page(1, true, Some("same")) })
            .await
            .unwrap_err();
        assert!(error.contains("did not advance"), "{error}");
    }

    #[tokio::test]
    async fn pages_stop_on_missing_marker() {
        let error = read_pages("test", |_| async { page(1, true, Some("")) })
            .await
            .unwrap_err();
        assert!(error.contains("sent no Marker"), "{error}");
    }
}

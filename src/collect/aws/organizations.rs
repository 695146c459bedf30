//! Finds the member accounts of an AWS organization with Organizations
//! `ListAccounts`, called from the management account or a delegated
//! administrator, and turns each into an account to scan through a role
//! assumed in it.
//!
//! The management account appears in `ListAccounts` like any member, so it
//! is scanned through the member role too unless `exclude` lists it.

use std::collections::HashSet;

use aws_sdk_organizations::types::{Account, AccountState, AccountStatus};
use tracing::{debug, info, warn};

use super::api::{describe_error, load_sdk_config};
use crate::collect::CollectError;
use crate::settings::{AwsAccountSettings, AwsOrganizationSettings, RetrySettings};

/// Accounts per `ListAccounts` page (the API's maximum).
const PAGE_SIZE: i32 = 20;

/// Maximum pages read before the listing is declared cut short.
const MAX_PAGES: usize = 10_000;

/// One account as `ListAccounts` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberAccount {
    /// The 12-digit account id.
    pub id: String,
    /// The account's ARN in the organization, which names the partition.
    pub arn: Option<String>,
    /// The older `Status` field: `ACTIVE`, `SUSPENDED` or `PENDING_CLOSURE`.
    pub status: Option<String>,
    /// The newer `State` field, such as `ACTIVE`, `SUSPENDED` or `CLOSED`.
    pub state: Option<String>,
}

impl MemberAccount {
    fn from_sdk(account: &Account) -> MemberAccount {
        MemberAccount {
            id: account.id().unwrap_or_default().to_string(),
            arn: account.arn().map(str::to_string),
            status: account
                .status()
                .map(AccountStatus::as_str)
                .map(str::to_string),
            state: account
                .state()
                .map(AccountState::as_str)
                .map(str::to_string),
        }
    }

    /// Returns the state that makes the account unreadable, if any:
    /// suspended, closed or being closed, by either `State` or `Status`.
    pub fn inactive_state(&self) -> Option<&str> {
        const INACTIVE: [&str; 3] = ["SUSPENDED", "PENDING_CLOSURE", "CLOSED"];
        [self.state.as_deref(), self.status.as_deref()]
            .into_iter()
            .flatten()
            .find(|value| INACTIVE.contains(value))
    }

    /// Returns the partition from the account's ARN (`aws`, `aws-us-gov`,
    /// `aws-cn`), or `aws` when the ARN is missing.
    pub fn partition(&self) -> &str {
        self.arn
            .as_deref()
            .and_then(|arn| arn.split(':').nth(1))
            .filter(|partition| !partition.is_empty())
            .unwrap_or("aws")
    }
}

/// Lists the organization's accounts and returns those to scan, in the
/// order `ListAccounts` returned them.
///
/// Fails when the accounts cannot be listed in full: scanning part of an
/// organization would let the rest go unnoticed.
pub async fn discover_accounts(
    organization: &AwsOrganizationSettings,
    retry: &RetrySettings,
) -> Result<Vec<AwsAccountSettings>, CollectError> {
    let config = load_sdk_config(&organization.management_account(), retry).await;
    let client = aws_sdk_organizations::Client::new(&config);
    let accounts = list_accounts(&client)
        .await
        .map_err(|reason| CollectError::Unavailable {
            provider: "aws",
            scope: organization.label(),
            reason,
        })?;
    info!(
        organization = %organization.label(),
        accounts = accounts.len(),
        "listed the organization's accounts"
    );
    let selected = select_accounts(organization, &accounts);
    if selected.is_empty() {
        warn!(organization = %organization.label(), "no account of the organization is selected for scanning");
    }
    Ok(selected)
}

/// Reads every page of `ListAccounts`, following `NextToken`.
async fn list_accounts(
    client: &aws_sdk_organizations::Client,
) -> Result<Vec<MemberAccount>, String> {
    let mut accounts = Vec::new();
    let mut token: Option<String> = None;
    let mut seen_tokens = HashSet::new();

    for page in 1..=MAX_PAGES {
        let output = client
            .list_accounts()
            .max_results(PAGE_SIZE)
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|error| {
                let description = describe_error("organizations:ListAccounts", &error);
                format!("{description}{}", list_accounts_hint(&description))
            })?;
        accounts.extend(output.accounts().iter().map(MemberAccount::from_sdk));

        let next = output.next_token().filter(|next| !next.is_empty());
        let Some(next) = next else {
            return Ok(accounts);
        };
        if !seen_tokens.insert(next.to_string()) {
            return Err(format!(
                "organizations:ListAccounts: the listing did not advance: NextToken repeated \
                 after page {page}"
            ));
        }
        debug!(page, "reading next page of accounts");
        token = Some(next.to_string());
    }
    Err(format!(
        "organizations:ListAccounts: stopped after {MAX_PAGES} pages"
    ))
}

/// Adds what to do when the caller may not list the organization's accounts.
fn list_accounts_hint(description: &str) -> &'static str {
    if description.contains("AWSOrganizationsNotInUseException") {
        " (the credentials' account is in no organization; use the management account's profile or role_arn)"
    } else if description.contains("AccessDenied") {
        " (ListAccounts works only from the management account or a delegated administrator, \
         with organizations:ListAccounts allowed)"
    } else {
        ""
    }
}

/// Keeps the accounts to scan: those in `include` (every account when it
/// is empty), not in `exclude`, and not suspended or closed. Logs each
/// account left out and each included id the organization does not have.
pub fn select_accounts(
    organization: &AwsOrganizationSettings,
    accounts: &[MemberAccount],
) -> Vec<AwsAccountSettings> {
    let mut selected = Vec::new();
    for account in accounts {
        if !crate::collect::aws::is_account_id(&account.id) {
            warn!(account = ?account.id, "skipping an account whose id is not 12 digits");
            continue;
        }
        if !organization.include.is_empty() && !organization.include.contains(&account.id) {
            debug!(account = %account.id, "skipping an account not in include");
            continue;
        }
        if organization.exclude.contains(&account.id) {
            info!(account = %account.id, "skipping an excluded account");
            continue;
        }
        if let Some(state) = account.inactive_state() {
            info!(account = %account.id, state, "skipping an account that is not active");
            continue;
        }
        selected.push(member_settings(organization, account));
    }

    for id in &organization.include {
        if !accounts.iter().any(|account| account.id == *id) {
            warn!(account = %id, "an included account is not in the organization; it is not scanned");
        }
    }
    selected
}

/// Returns the settings that reach a member account through its role.
fn member_settings(
    organization: &AwsOrganizationSettings,
    account: &MemberAccount,
) -> AwsAccountSettings {
    let role_arn = format!(
        "arn:{}:iam::{}:role/{}",
        account.partition(),
        account.id,
        organization.member_role_name
    );
    AwsAccountSettings {
        account_id: Some(account.id.clone()),
        profile: organization.profile.clone(),
        role_arn: Some(role_arn),
        source_role_arn: organization.role_arn.clone(),
        external_id: organization.external_id.clone(),
        endpoint_url: organization.endpoint_url.clone(),
        region: organization.region.clone(),
        concurrency: organization.concurrency,
        // NOTE: Identity Center is read only for accounts listed under
        // [[aws.accounts]]; its instance lives in one account, not in each member.
        identity_center: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(id: &str, status: Option<&str>, state: Option<&str>) -> MemberAccount {
        MemberAccount {
            id: id.to_string(),
            arn: Some(format!(
                "arn:aws-us-gov:organizations::111111111111:account/o-abc/{id}"
            )),
            status: status.map(str::to_string),
            state: state.map(str::to_string),
        }
    }

    fn organization() -> AwsOrganizationSettings {
        AwsOrganizationSettings {
            member_role_name: "idrift-reader".to_string(),
            external_id: Some("idrift-external".to_string()),
            role_arn: Some("arn:aws:iam::111111111111:role/idrift-lister".to_string()),
            concurrency: 8,
            ..AwsOrganizationSettings::default()
        }
    }

    fn selected_ids(
        organization: &AwsOrganizationSettings,
        accounts: &[MemberAccount],
    ) -> Vec<String> {
        select_accounts(organization, accounts)
            .into_iter()
            .map(|account| account.account_id.unwrap())
            .collect()
    }

    #[test]
    fn member_role_arn_uses_partition() {
        let accounts = [account("222222222222", Some("ACTIVE"), Some("ACTIVE"))];
        let selected = select_accounts(&organization(), &accounts);
        assert_eq!(
            selected[0].role_arn.as_deref(),
            Some("arn:aws-us-gov:iam::222222222222:role/idrift-reader")
        );
        assert_eq!(selected[0].external_id.as_deref(), Some("idrift-external"));
        assert_eq!(
            selected[0].source_role_arn.as_deref(),
            Some("arn:aws:iam::111111111111:role/idrift-lister")
        );
    }

    #[test]
    fn suspended_accounts_are_skipped() {
        let accounts = [
            account("222222222222", Some("ACTIVE"), Some("ACTIVE")),
            account("333333333333", Some("SUSPENDED"), None),
            account("444444444444", None, Some("SUSPENDED")),
            account("555555555555", Some("ACTIVE"), Some("CLOSED")),
            account(
                "666666666666",
                Some("PENDING_CLOSURE"),
                Some("PENDING_CLOSURE"),
            ),
            account("777777777777", None, None),
        ];
        let ids = selected_ids(&organization(), &accounts);
        assert_eq!(ids, ["222222222222", "777777777777"]);
    }

    #[test]
    fn include_and_exclude_filter() {
        let accounts = [
            account("222222222222", None, Some("ACTIVE")),
            account("333333333333", None, Some("ACTIVE")),
            account("444444444444", None, Some("ACTIVE")),
        ];
        let mut only = organization();
        only.include = vec!["333333333333".into(), "444444444444".into()];
        assert_eq!(
            selected_ids(&only, &accounts),
            ["333333333333", "444444444444"]
        );

        let mut except = organization();
        except.exclude = vec!["333333333333".into()];
        assert_eq!(
            selected_ids(&except, &accounts),
            ["222222222222", "444444444444"]
        );
    }

    #[test]
    fn missing_arn_means_aws_partition() {
        let mut member = account("222222222222", None, None);
        member.arn = None;
        assert_eq!(member.partition(), "aws");
    }
}

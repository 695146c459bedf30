//! Resolved settings: the config file merged with command-line flags,
//! validated before any work starts. The pipeline reads only these types.

use std::path::PathBuf;
use std::time::Duration;

/// Retry and timeout policy for API calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySettings {
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    /// Backoff before the first retry; it grows exponentially with jitter.
    pub initial_backoff: Duration,
    /// Maximum backoff between two attempts.
    pub max_backoff: Duration,
    /// Time limit for one attempt.
    pub attempt_timeout: Duration,
}

impl RetrySettings {
    /// Returns the wait before retry `attempt` (1 for the first retry):
    /// the initial backoff doubled per attempt, capped at the maximum.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

impl Default for RetrySettings {
    fn default() -> RetrySettings {
        RetrySettings {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(20),
            attempt_timeout: Duration::from_secs(60),
        }
    }
}

/// One AWS account to scan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsAccountSettings {
    /// Expected account id; the scan fails if the credentials reach another.
    pub account_id: Option<String>,
    /// Named profile from the shared AWS config files.
    pub profile: Option<String>,
    /// Role to assume (session name `idrift`).
    pub role_arn: Option<String>,
    /// Role assumed first, whose credentials then assume `role_arn`: the
    /// management account's role when a member account is reached through
    /// an organization.
    pub source_role_arn: Option<String>,
    /// External id for the assumption of `role_arn`.
    pub external_id: Option<String>,
    /// Endpoint URL for IAM and STS, for emulators and fakes.
    pub endpoint_url: Option<String>,
    /// Signing region; IAM is global and signs in `us-east-1` by default.
    pub region: Option<String>,
    /// Users whose credentials are listed at once.
    pub concurrency: usize,
    /// IAM Identity Center to read in this account; `None` leaves it out.
    pub identity_center: Option<IdentityCenterSettings>,
}

/// The location of an account's IAM Identity Center instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentityCenterSettings {
    /// The instance's region; the account's region when absent.
    pub region: Option<String>,
    /// The instance ARN; found with `sso:ListInstances` when absent.
    pub instance_arn: Option<String>,
    /// The identity store id (`d-...`); found with `sso:ListInstances` when absent.
    pub identity_store_id: Option<String>,
}

impl AwsAccountSettings {
    /// Returns the name used for this account in messages before its id is known.
    pub fn label(&self) -> String {
        if let Some(account_id) = &self.account_id {
            return account_id.clone();
        }
        if let Some(role_arn) = &self.role_arn {
            return format!("(role {role_arn})");
        }
        match &self.profile {
            Some(profile) => format!("(profile {profile})"),
            None => "(default credentials)".to_string(),
        }
    }
}

/// An AWS organization whose member accounts are found with Organizations
/// `ListAccounts` and scanned through a role in each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsOrganizationSettings {
    /// Named profile for the management or delegated administrator account.
    pub profile: Option<String>,
    /// Role to assume in the management or delegated administrator account
    /// before listing the accounts.
    pub role_arn: Option<String>,
    /// Role name assumed in each member account, such as `idrift-reader`.
    pub member_role_name: String,
    /// External id for the member role assumption.
    pub external_id: Option<String>,
    /// Account ids to scan; empty means every active account.
    pub include: Vec<String>,
    /// Account ids never scanned.
    pub exclude: Vec<String>,
    /// Endpoint URL for Organizations, STS and IAM, for emulators and fakes.
    pub endpoint_url: Option<String>,
    /// Signing region; Organizations is global and signs in `us-east-1`.
    pub region: Option<String>,
    /// Users whose credentials are listed at once, in each member account.
    pub concurrency: usize,
}

impl AwsOrganizationSettings {
    /// Returns the settings that reach the management account itself.
    pub fn management_account(&self) -> AwsAccountSettings {
        AwsAccountSettings {
            account_id: None,
            profile: self.profile.clone(),
            role_arn: self.role_arn.clone(),
            source_role_arn: None,
            external_id: None,
            endpoint_url: self.endpoint_url.clone(),
            region: self.region.clone(),
            concurrency: self.concurrency,
            identity_center: None,
        }
    }

    /// Returns the name used for this organization in messages.
    pub fn label(&self) -> String {
        format!("organization {}", self.management_account().label())
    }
}

/// How many scopes are collected at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScopeLimits {
    /// Scopes collected at once across every provider.
    pub global: usize,
    /// AWS accounts collected at once.
    pub aws: usize,
    /// Entra tenants collected at once.
    pub azure: usize,
    /// Google Cloud projects collected at once.
    pub gcp: usize,
}

impl Default for ScopeLimits {
    fn default() -> ScopeLimits {
        ScopeLimits {
            global: 4,
            aws: 4,
            azure: 2,
            gcp: 4,
        }
    }
}

/// An Azure cloud: each has its own authority and Graph host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AzureCloud {
    /// Azure public cloud.
    #[default]
    Public,
    /// Azure US Government.
    UsGovernment,
    /// Azure operated by 21Vianet in China.
    China,
}

impl AzureCloud {
    /// Parses a config name: `public`, `us_government` or `china`.
    pub fn parse(name: &str) -> Option<AzureCloud> {
        match name {
            "public" => Some(AzureCloud::Public),
            "us_government" => Some(AzureCloud::UsGovernment),
            "china" => Some(AzureCloud::China),
            _ => None,
        }
    }
}

/// Source of an Entra tenant's token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AzureCredentialSource {
    /// The first that the environment configures: a client secret
    /// (`AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`), a client certificate
    /// (`AZURE_CLIENT_CERTIFICATE_PATH`), workload identity
    /// (`AZURE_FEDERATED_TOKEN_FILE`), a managed identity endpoint
    /// (`IDENTITY_ENDPOINT`, `MSI_ENDPOINT`), else the Azure CLI's login.
    #[default]
    Default,
    /// An app registration's client secret from `AZURE_CLIENT_SECRET`.
    ClientSecret,
    /// An app registration's certificate and private key, from a PKCS#12
    /// or PEM file, with its password in `AZURE_CLIENT_CERTIFICATE_PASSWORD`.
    ClientCertificate,
    /// A federated token file (Kubernetes workload identity).
    WorkloadIdentity,
    /// The managed identity of the Azure resource idrift runs on.
    ManagedIdentity,
    /// The Azure CLI's signed-in account (`az login`).
    AzureCli,
}

impl AzureCredentialSource {
    /// Parses a config name.
    pub fn parse(name: &str) -> Option<AzureCredentialSource> {
        match name {
            "default" => Some(AzureCredentialSource::Default),
            "client_secret" => Some(AzureCredentialSource::ClientSecret),
            "client_certificate" => Some(AzureCredentialSource::ClientCertificate),
            "workload_identity" => Some(AzureCredentialSource::WorkloadIdentity),
            "managed_identity" => Some(AzureCredentialSource::ManagedIdentity),
            "azure_cli" => Some(AzureCredentialSource::AzureCli),
            _ => None,
        }
    }
}

/// One Entra tenant to scan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AzureTenantSettings {
    /// The tenant id (a GUID), which is the scope.
    pub tenant_id: String,
    /// The cloud the tenant lives in.
    pub cloud: AzureCloud,
    /// Source of the token.
    pub credential: AzureCredentialSource,
    /// The application (client) id, for client secrets and certificates,
    /// workload identity and user-assigned managed identities.
    pub client_id: Option<String>,
    /// The client certificate file, resolved against the config file's
    /// folder; `AZURE_CLIENT_CERTIFICATE_PATH` applies when it is unset.
    pub certificate_path: Option<PathBuf>,
    /// Graph base URL in place of the cloud's, for fakes and proxies.
    pub graph_url: Option<String>,
    /// HTTPS authority host in place of the cloud's, for proxies and fake
    /// token endpoints.
    pub authority_url: Option<String>,
    /// Records per Graph page (`$top`), 1 to 999.
    pub page_size: u32,
    /// Apps whose federated credentials are listed at once.
    pub concurrency: usize,
    /// Subscription ids whose Azure RBAC role assignments and user-assigned
    /// managed identities are listed through Azure Resource Manager.
    pub subscriptions: Vec<String>,
    /// Management group ids whose Azure RBAC role assignments are listed.
    pub management_groups: Vec<String>,
    /// Azure Resource Manager base URL in place of the cloud's, for fakes
    /// and proxies.
    pub arm_url: Option<String>,
}

/// Report output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReportFormat {
    /// Aligned text for people.
    #[default]
    Table,
    /// JSON for machines.
    Json,
    /// Markdown for a pull request or a ticket.
    Markdown,
    /// SARIF 2.1.0 for code-scanning tools.
    Sarif,
    /// OCSF Detection Finding events, one JSON object a line, for SIEMs.
    Ocsf,
}

impl ReportFormat {
    /// Every format, in the order help text lists them.
    pub const ALL: [ReportFormat; 5] = [
        ReportFormat::Table,
        ReportFormat::Json,
        ReportFormat::Markdown,
        ReportFormat::Sarif,
        ReportFormat::Ocsf,
    ];

    /// Parses a command-line name; `md` is short for `markdown`.
    pub fn parse(name: &str) -> Option<ReportFormat> {
        match name {
            "md" => Some(ReportFormat::Markdown),
            _ => ReportFormat::ALL
                .into_iter()
                .find(|format| format.as_str() == name),
        }
    }

    /// Returns the name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            ReportFormat::Table => "table",
            ReportFormat::Json => "json",
            ReportFormat::Markdown => "markdown",
            ReportFormat::Sarif => "sarif",
            ReportFormat::Ocsf => "ocsf",
        }
    }
}

/// Returns true for a GUID such as `72f988bf-86f1-41af-91ab-2d7cd011db47`.
pub fn is_guid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    let lengths = [8, 4, 4, 4, 12];
    groups.len() == lengths.len()
        && groups.iter().zip(lengths).all(|(group, length)| {
            group.len() == length && group.bytes().all(|b| b.is_ascii_hexdigit())
        })
}

/// The Google Cloud projects to scan and how to reach them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcpSettings {
    /// Project ids listed in the config.
    pub projects: Vec<String>,
    /// Organizations and folders (`organizations/123`, `folders/456`)
    /// whose active projects are found by search and scanned too.
    pub discover: Vec<String>,
    /// Project ids never scanned, whether listed or found.
    pub exclude: Vec<String>,
    /// A service account to impersonate with the ambient credentials.
    pub impersonate_service_account: Option<String>,
    /// IAM API base URL, for fakes and proxies.
    pub iam_url: String,
    /// Cloud Resource Manager API base URL, for fakes and proxies.
    pub resource_manager_url: String,
    /// Service accounts per page (`pageSize`), 1 to 100.
    pub page_size: u32,
    /// Requests in flight at once, across every project.
    pub concurrency: usize,
}

impl Default for GcpSettings {
    fn default() -> GcpSettings {
        GcpSettings {
            projects: Vec::new(),
            discover: Vec::new(),
            exclude: Vec::new(),
            impersonate_service_account: None,
            iam_url: "https://iam.googleapis.com".to_string(),
            resource_manager_url: "https://cloudresourcemanager.googleapis.com".to_string(),
            page_size: 100,
            concurrency: 8,
        }
    }
}

impl GcpSettings {
    /// Returns true when the config names no project and no parent to search.
    pub fn is_empty(&self) -> bool {
        self.projects.is_empty() && self.discover.is_empty()
    }
}

/// The Google Workspace (or Cloud Identity) customers to scan and how to
/// reach the Admin SDK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GworkspaceSettings {
    /// Customers, in config order: `my_customer` (the caller's own) or a
    /// customer id such as `C03az79cb`.
    pub customers: Vec<String>,
    /// Admin SDK base URL, for fakes and proxies.
    pub directory_url: String,
    /// Users per page (`maxResults`), 1 to 500.
    pub page_size: u32,
}

impl Default for GworkspaceSettings {
    fn default() -> GworkspaceSettings {
        GworkspaceSettings {
            customers: Vec::new(),
            directory_url: "https://admin.googleapis.com".to_string(),
            page_size: 500,
        }
    }
}

impl GworkspaceSettings {
    /// The alias the Admin SDK accepts for the caller's own customer.
    pub const MY_CUSTOMER: &str = "my_customer";

    /// Returns true when the config names no customer.
    pub fn is_empty(&self) -> bool {
        self.customers.is_empty()
    }
}

/// Returns true for a Google Workspace customer id: `C` followed by 5 to
/// 20 letters and digits, such as `C03az79cb`.
// NOTE: Google documents no pattern for customer ids. The ids seen are `C`
// and 8 letters and digits, so the bounds here are a guess that leaves room.
pub fn is_customer_id(text: &str) -> bool {
    text.strip_prefix('C').is_some_and(|rest| {
        (5..=20).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}
/// Settings of the attribution stage, from the config's `[attribution]`
/// table: whether findings are traced to the principal that made them in
/// the cloud's audit log, and how many calls that may cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributionSettings {
    /// Look up the actor of findings at all.
    pub enabled: bool,
    /// Look up expected findings too, not only unexpected ones.
    pub all_findings: bool,
    /// Time added before the previous scan and after this one, for clock
    /// skew and for the audit log's delivery delay.
    pub margin: Duration,
    /// Length of the window when the scope has no previous scan time.
    pub first_window: Duration,
    /// Most findings looked up per scope; the rest are marked unavailable.
    pub max_lookups_per_scope: usize,
    /// CloudTrail region that records IAM events.
    pub aws_region: String,
    /// CloudTrail endpoint in place of AWS's, for fakes.
    pub aws_endpoint_url: Option<String>,
    /// LookupEvents calls per second per account.
    pub aws_calls_per_second: u32,
    /// Graph base URL in place of the tenant's, for fakes.
    pub azure_graph_url: Option<String>,
    /// Cloud Logging API base URL.
    pub gcp_logging_url: String,
}

impl Default for AttributionSettings {
    fn default() -> AttributionSettings {
        AttributionSettings {
            enabled: false,
            all_findings: false,
            margin: Duration::from_secs(10 * 60),
            first_window: Duration::from_secs(7 * 24 * 3600),
            max_lookups_per_scope: 50,
            aws_region: "us-east-1".to_string(),
            aws_endpoint_url: None,
            // LookupEvents' quota: 2 requests per second per account and region.
            aws_calls_per_second: 2,
            azure_graph_url: None,
            gcp_logging_url: "https://logging.googleapis.com".to_string(),
        }
    }
}

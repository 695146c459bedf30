//! The TOML config file: what to scan and how. Unknown keys are errors, so
//! a typo never silently drops a setting. Secrets do not belong here: they
//! come from each provider's usual credential chain.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::rules::ExpectedRule;
use crate::settings::{
    AttributionSettings, AwsAccountSettings, AwsOrganizationSettings, AzureCloud,
    AzureCredentialSource, AzureTenantSettings, GcpSettings, GworkspaceSettings,
    IdentityCenterSettings, RetrySettings, ScopeLimits, is_guid,
};

/// A config file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("config {}: cannot read it: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown keys.
    #[error("config {}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A value is out of range or malformed.
    #[error("config {}: {key}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The key at fault, such as `aws.accounts[0].account_id`.
        key: String,
        /// The problem and the expected form.
        message: String,
    },
}

/// The file's layout; see `config.example.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    snapshots: Option<PathBuf>,
    #[serde(default)]
    scan: ScanFile,
    #[serde(default)]
    retry: RetryFile,
    #[serde(default)]
    aws: AwsFile,
    #[serde(default)]
    azure: AzureFile,
    #[serde(default)]
    gcp: GcpFile,
    #[serde(default)]
    gworkspace: GworkspaceFile,
    /// Read table by table, so that errors name the rule and field.
    #[serde(default)]
    expected: Vec<toml::Table>,
    #[serde(default)]
    attribution: AttributionFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AttributionFile {
    enabled: Option<bool>,
    all_findings: Option<bool>,
    margin_minutes: Option<u64>,
    first_scan_window_days: Option<u64>,
    max_lookups_per_scope: Option<usize>,
    #[serde(default)]
    aws: AttributionAwsFile,
    #[serde(default)]
    azure: AttributionAzureFile,
    #[serde(default)]
    gcp: AttributionGcpFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AttributionAwsFile {
    region: Option<String>,
    endpoint_url: Option<String>,
    calls_per_second: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AttributionAzureFile {
    graph_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AttributionGcpFile {
    logging_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GcpFile {
    #[serde(default)]
    projects: Vec<String>,
    #[serde(default)]
    discover: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
    impersonate_service_account: Option<String>,
    iam_url: Option<String>,
    resource_manager_url: Option<String>,
    page_size: Option<u32>,
    concurrency: Option<usize>,
    scopes_in_parallel: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GworkspaceFile {
    /// Customer ids as strings, or `[[gworkspace.customers]]` tables; read
    /// one by one, so that errors name the entry and key.
    #[serde(default)]
    customers: Vec<toml::Value>,
    directory_url: Option<String>,
    page_size: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScanFile {
    concurrency: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AzureFile {
    concurrency: Option<usize>,
    scopes_in_parallel: Option<usize>,
    page_size: Option<u32>,
    #[serde(default)]
    tenants: Vec<AzureTenantFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AzureTenantFile {
    tenant_id: Option<String>,
    cloud: Option<String>,
    credential: Option<String>,
    client_id: Option<String>,
    certificate_path: Option<PathBuf>,
    graph_url: Option<String>,
    authority_url: Option<String>,
    #[serde(default)]
    subscriptions: Vec<String>,
    #[serde(default)]
    management_groups: Vec<String>,
    arm_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryFile {
    max_attempts: Option<u32>,
    initial_backoff_ms: Option<u64>,
    max_backoff_ms: Option<u64>,
    attempt_timeout_seconds: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AwsFile {
    concurrency: Option<usize>,
    scopes_in_parallel: Option<usize>,
    #[serde(default)]
    accounts: Vec<AwsAccountFile>,
    #[serde(default)]
    organizations: Vec<AwsOrganizationFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AwsOrganizationFile {
    profile: Option<String>,
    role_arn: Option<String>,
    member_role_name: Option<String>,
    external_id: Option<String>,
    #[serde(default)]
    include: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
    endpoint_url: Option<String>,
    region: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AwsAccountFile {
    account_id: Option<String>,
    profile: Option<String>,
    role_arn: Option<String>,
    external_id: Option<String>,
    endpoint_url: Option<String>,
    region: Option<String>,
    identity_center: Option<bool>,
    identity_center_region: Option<String>,
    identity_center_instance_arn: Option<String>,
    identity_store_id: Option<String>,
}

/// A validated config.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Snapshot folder, resolved against the config file's folder.
    pub snapshots: Option<PathBuf>,
    /// Retry policy for every provider.
    pub retry: RetrySettings,
    /// AWS accounts to scan.
    pub aws_accounts: Vec<AwsAccountSettings>,
    /// AWS organizations whose member accounts are found and scanned.
    pub aws_organizations: Vec<AwsOrganizationSettings>,
    /// How many scopes are collected at once.
    pub scope_limits: ScopeLimits,
    /// Entra tenants to scan.
    pub azure_tenants: Vec<AzureTenantSettings>,
    /// Google Cloud projects to scan.
    pub gcp: GcpSettings,
    /// Google Workspace customers to scan.
    pub gworkspace: GworkspaceSettings,
    /// Expected-account rules, in file order.
    pub expected: Vec<ExpectedRule>,
    /// Audit-log lookups of who made each finding's change.
    pub attribution: AttributionSettings,
}

/// Default number of users whose credentials are listed at once.
const DEFAULT_AWS_CONCURRENCY: usize = 8;

/// Reads and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

/// Parses and validates config text; `path` is used for messages and relative paths.
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let file: ConfigFile = toml::from_str(text).map_err(|error| ConfigError::Parse {
        path: path.to_path_buf(),
        message: describe_parse_error(text, &error),
    })?;
    let invalid = |key: String, message: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        key,
        message,
    };

    let retry = resolve_retry(&file.retry).map_err(|(key, message)| invalid(key, message))?;
    let concurrency = file.aws.concurrency.unwrap_or(DEFAULT_AWS_CONCURRENCY);
    if !(1..=64).contains(&concurrency) {
        return Err(invalid(
            "aws.concurrency".into(),
            format!("{concurrency} is out of range; use 1 to 64"),
        ));
    }

    let mut aws_accounts = Vec::new();
    for (index, account) in file.aws.accounts.iter().enumerate() {
        let settings = resolve_account(account, concurrency)
            .map_err(|(key, message)| invalid(format!("aws.accounts[{index}].{key}"), message))?;
        if let Some(earlier) = aws_accounts.iter().position(|other| *other == settings) {
            return Err(invalid(
                format!("aws.accounts[{index}]"),
                format!("repeats aws.accounts[{earlier}]; remove one of them"),
            ));
        }
        let same_id = settings.account_id.is_some()
            && aws_accounts
                .iter()
                .any(|other: &AwsAccountSettings| other.account_id == settings.account_id);
        if same_id {
            return Err(invalid(
                format!("aws.accounts[{index}].account_id"),
                "names an account listed before; each account is scanned once".to_string(),
            ));
        }
        aws_accounts.push(settings);
    }

    let mut aws_organizations = Vec::new();
    for (index, organization) in file.aws.organizations.iter().enumerate() {
        let settings =
            resolve_organization(organization, concurrency).map_err(|(key, message)| {
                invalid(format!("aws.organizations[{index}].{key}"), message)
            })?;
        aws_organizations.push(settings);
    }
    let scope_limits =
        resolve_scope_limits(&file).map_err(|(key, message)| invalid(key, message))?;

    let gcp = resolve_gcp(&file.gcp).map_err(|(key, message)| invalid(key, message))?;
    let gworkspace =
        resolve_gworkspace(&file.gworkspace).map_err(|(key, message)| invalid(key, message))?;

    let folder = path.parent().unwrap_or(Path::new("."));
    let azure_tenants =
        resolve_tenants(&file.azure, folder).map_err(|(key, message)| invalid(key, message))?;

    let expected =
        crate::rules::resolve(&file.expected).map_err(|(key, message)| invalid(key, message))?;

    let attribution =
        resolve_attribution(&file.attribution).map_err(|(key, message)| invalid(key, message))?;

    let snapshots = file.snapshots.map(|snapshots| folder.join(snapshots));
    Ok(Config {
        snapshots,
        retry,
        aws_accounts,
        aws_organizations,
        scope_limits,
        azure_tenants,
        gcp,
        gworkspace,
        expected,
        attribution,
    })
}

/// Validates the `[attribution]` table.
fn resolve_attribution(file: &AttributionFile) -> Result<AttributionSettings, KeyError> {
    let defaults = AttributionSettings::default();
    let bounded = |key: &str, value: Option<u64>, range: std::ops::RangeInclusive<u64>| match value
    {
        Some(value) if !range.contains(&value) => Err((
            key.to_string(),
            format!(
                "{value} is out of range; use {} to {}",
                range.start(),
                range.end()
            ),
        )),
        _ => Ok(value),
    };

    let margin = bounded("attribution.margin_minutes", file.margin_minutes, 0..=1440)?
        .map_or(defaults.margin, |minutes| Duration::from_secs(minutes * 60));
    let first_window = bounded(
        "attribution.first_scan_window_days",
        file.first_scan_window_days,
        1..=90,
    )?
    .map_or(defaults.first_window, |days| {
        Duration::from_secs(days * 24 * 3600)
    });
    let max_lookups = bounded(
        "attribution.max_lookups_per_scope",
        file.max_lookups_per_scope.map(|value| value as u64),
        1..=1000,
    )?
    .map_or(defaults.max_lookups_per_scope, |value| value as usize);
    let calls_per_second = bounded(
        "attribution.aws.calls_per_second",
        file.aws.calls_per_second.map(u64::from),
        1..=10,
    )?
    .map_or(defaults.aws_calls_per_second, |value| value as u32);

    let endpoints = [
        ("attribution.aws.endpoint_url", &file.aws.endpoint_url),
        ("attribution.azure.graph_url", &file.azure.graph_url),
        ("attribution.gcp.logging_url", &file.gcp.logging_url),
    ];
    for (key, url) in endpoints {
        if let Some(url) = url {
            check_endpoint(url).map_err(|message| (key.to_string(), message))?;
        }
    }

    if let Some(region) = &file.aws.region {
        let valid = !region.is_empty()
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid {
            return Err((
                "attribution.aws.region".to_string(),
                format!("{region:?} is not an AWS region such as us-east-1"),
            ));
        }
    }

    let trim = |url: &Option<String>| {
        url.as_deref()
            .map(|url| url.trim_end_matches('/').to_string())
    };
    Ok(AttributionSettings {
        enabled: file.enabled.unwrap_or(defaults.enabled),
        all_findings: file.all_findings.unwrap_or(defaults.all_findings),
        margin,
        first_window,
        max_lookups_per_scope: max_lookups,
        aws_region: file.aws.region.clone().unwrap_or(defaults.aws_region),
        aws_endpoint_url: file.aws.endpoint_url.clone(),
        aws_calls_per_second: calls_per_second,
        azure_graph_url: trim(&file.azure.graph_url),
        gcp_logging_url: trim(&file.gcp.logging_url).unwrap_or(defaults.gcp_logging_url),
    })
}

/// Describes a TOML error by line, column and message, without quoting the
/// offending line: a secret pasted into the file must not reach a log.
fn describe_parse_error(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim_end();
    let Some(span) = error.span() else {
        return message.to_string();
    };
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |newline| newline + 1) + 1;
    let within = crate::rules::locate(text, span.start)
        .map(|key| format!(" ({key})"))
        .unwrap_or_default();
    format!("line {line}, column {column}{within}: {message}")
}

type KeyError = (String, String);

/// Validates the `[azure]` table and its tenants; a relative
/// `certificate_path` is resolved against `folder`.
fn resolve_tenants(file: &AzureFile, folder: &Path) -> Result<Vec<AzureTenantSettings>, KeyError> {
    let concurrency = file.concurrency.unwrap_or(DEFAULT_AWS_CONCURRENCY);
    if !(1..=64).contains(&concurrency) {
        return Err((
            "azure.concurrency".into(),
            format!("{concurrency} is out of range; use 1 to 64"),
        ));
    }
    let page_size = file.page_size.unwrap_or(999);
    if !(1..=999).contains(&page_size) {
        return Err((
            "azure.page_size".into(),
            format!("{page_size} is out of range; use 1 to 999"),
        ));
    }

    let mut tenants: Vec<AzureTenantSettings> = Vec::new();
    for (index, tenant) in file.tenants.iter().enumerate() {
        let settings = resolve_tenant(tenant, folder, page_size, concurrency)
            .map_err(|(name, message)| (format!("azure.tenants[{index}].{name}"), message))?;
        if tenants
            .iter()
            .any(|other| other.tenant_id == settings.tenant_id)
        {
            return Err((
                format!("azure.tenants[{index}].tenant_id"),
                "names a tenant listed before; each tenant is scanned once".to_string(),
            ));
        }
        tenants.push(settings);
    }
    Ok(tenants)
}

/// Validates the `[gcp]` table.
fn resolve_gcp(file: &GcpFile) -> Result<GcpSettings, KeyError> {
    let defaults = GcpSettings::default();
    let concurrency = file.concurrency.unwrap_or(defaults.concurrency);
    if !(1..=64).contains(&concurrency) {
        return Err((
            "gcp.concurrency".into(),
            format!("{concurrency} is out of range; use 1 to 64"),
        ));
    }
    let page_size = file.page_size.unwrap_or(defaults.page_size);
    if !(1..=100).contains(&page_size) {
        return Err((
            "gcp.page_size".into(),
            format!("{page_size} is out of range; use 1 to 100"),
        ));
    }
    for (index, project) in file.projects.iter().chain(&file.exclude).enumerate() {
        let key = if index < file.projects.len() {
            format!("gcp.projects[{index}]")
        } else {
            format!("gcp.exclude[{}]", index - file.projects.len())
        };
        if !crate::collect::gcp::is_project_id(project) {
            return Err((
                key,
                format!(
                    "{project:?} is not a project id: 6 to 30 lowercase letters, digits and \
                     hyphens, starting with a letter (the id, not the display name or number)"
                ),
            ));
        }
    }
    for (index, project) in file.projects.iter().enumerate() {
        if file.projects[..index].contains(project) {
            return Err((
                format!("gcp.projects[{index}]"),
                "names a project listed before; each project is scanned once".to_string(),
            ));
        }
    }
    for (index, parent) in file.discover.iter().enumerate() {
        let number = parent
            .strip_prefix("organizations/")
            .or_else(|| parent.strip_prefix("folders/"));
        if !number.is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) {
            return Err((
                format!("gcp.discover[{index}]"),
                format!("{parent:?} is not organizations/<number> or folders/<number>"),
            ));
        }
    }
    if let Some(account) = &file.impersonate_service_account
        && !account.contains('@')
    {
        return Err((
            "gcp.impersonate_service_account".into(),
            format!("{account:?} is not a service account email"),
        ));
    }
    for (key, url) in [
        ("gcp.iam_url", &file.iam_url),
        ("gcp.resource_manager_url", &file.resource_manager_url),
    ] {
        if let Some(url) = url {
            check_endpoint(url).map_err(|message| (key.to_string(), message))?;
        }
    }
    let trim = |url: &Option<String>, default: String| {
        url.as_deref()
            .map(|url| url.trim_end_matches('/').to_string())
            .unwrap_or(default)
    };
    Ok(GcpSettings {
        projects: file.projects.clone(),
        discover: file.discover.clone(),
        exclude: file.exclude.clone(),
        impersonate_service_account: file.impersonate_service_account.clone(),
        iam_url: trim(&file.iam_url, defaults.iam_url),
        resource_manager_url: trim(&file.resource_manager_url, defaults.resource_manager_url),
        page_size,
        concurrency,
    })
}

/// Validates the `[gworkspace]` table and its customers.
fn resolve_gworkspace(file: &GworkspaceFile) -> Result<GworkspaceSettings, KeyError> {
    let defaults = GworkspaceSettings::default();
    let page_size = file.page_size.unwrap_or(defaults.page_size);
    if !(1..=500).contains(&page_size) {
        return Err((
            "gworkspace.page_size".into(),
            format!("{page_size} is out of range; use 1 to 500"),
        ));
    }
    if let Some(url) = &file.directory_url {
        check_endpoint(url).map_err(|message| ("gworkspace.directory_url".to_string(), message))?;
    }

    let mut customers: Vec<String> = Vec::new();
    for (index, entry) in file.customers.iter().enumerate() {
        let key = format!("gworkspace.customers[{index}]");
        let customer = resolve_customer(entry).map_err(|(name, message)| {
            let key = if name.is_empty() {
                key.clone()
            } else {
                format!("{key}.{name}")
            };
            (key, message)
        })?;
        if customers.contains(&customer) {
            return Err((
                key,
                format!("names customer {customer} listed before; each customer is scanned once"),
            ));
        }
        customers.push(customer);
    }
    Ok(GworkspaceSettings {
        customers,
        directory_url: file
            .directory_url
            .as_deref()
            .map_or(defaults.directory_url, |url| {
                url.trim_end_matches('/').to_string()
            }),
        page_size,
    })
}

/// Validates one customer: a string, or a table with `customer` (default
/// `my_customer`) and `admin_email`. Errors name the key within the table,
/// or no key for a bare string.
fn resolve_customer(entry: &toml::Value) -> Result<String, KeyError> {
    let customer = match entry {
        toml::Value::String(customer) => customer.clone(),
        toml::Value::Table(table) => {
            for (name, value) in table {
                match name.as_str() {
                    "customer" if value.is_str() => {}
                    "customer" => {
                        return Err((name.clone(), "must be a string".to_string()));
                    }
                    "admin_email" => return Err((name.clone(), admin_email_unsupported())),
                    _ => {
                        return Err((
                            name.clone(),
                            "is not a key of a customer; use customer".to_string(),
                        ));
                    }
                }
            }
            table
                .get("customer")
                .and_then(toml::Value::as_str)
                .unwrap_or(GworkspaceSettings::MY_CUSTOMER)
                .to_string()
        }
        _ => {
            return Err((
                String::new(),
                "must be a customer id string or a table with customer".to_string(),
            ));
        }
    };
    let valid =
        customer == GworkspaceSettings::MY_CUSTOMER || crate::settings::is_customer_id(&customer);
    if !valid {
        let key = match entry {
            toml::Value::Table(_) => "customer".to_string(),
            _ => String::new(),
        };
        return Err((
            key,
            format!(
                "{customer:?} is not a customer; use \"my_customer\" (the caller's own) or a \
                 customer id such as \"C03az79cb\" (Admin console, Account settings)"
            ),
        ));
    }
    Ok(customer)
}

/// Explains why `admin_email` (domain-wide delegation) is rejected.
// NOTE: domain-wide delegation needs a token whose JWT `sub` claim names the
// admin. google-cloud-auth 1.19's service account credentials always set
// `sub` to the service account itself and offer no way to change it, so
// idrift cannot act as an admin through a service account key yet.
fn admin_email_unsupported() -> String {
    "domain-wide delegation is not supported: google-cloud-auth 1.19, which idrift signs \
     tokens with, cannot set the admin as the token's subject; remove admin_email and use an \
     admin's own credentials (gcloud auth application-default login with the \
     admin.directory.user.readonly scope, see the README)"
        .to_string()
}

/// Validates one `[[azure.tenants]]` table. Errors name the key within the table.
fn resolve_tenant(
    tenant: &AzureTenantFile,
    folder: &Path,
    page_size: u32,
    concurrency: usize,
) -> Result<AzureTenantSettings, KeyError> {
    let tenant_id = tenant.tenant_id.clone().ok_or_else(|| {
        (
            "tenant_id".to_string(),
            "is required: the tenant's id, a GUID".to_string(),
        )
    })?;
    if !is_guid(&tenant_id) {
        return Err((
            "tenant_id".to_string(),
            format!("{tenant_id:?} is not a tenant id (a GUID)"),
        ));
    }
    let cloud_name = tenant.cloud.as_deref().unwrap_or("public");
    let cloud = AzureCloud::parse(cloud_name).ok_or_else(|| {
        (
            "cloud".to_string(),
            format!("{cloud_name:?} is not a cloud; use public, us_government or china"),
        )
    })?;
    let source_name = tenant.credential.as_deref().unwrap_or("default");
    let credential = AzureCredentialSource::parse(source_name).ok_or_else(|| {
        (
            "credential".to_string(),
            format!(
                "{source_name:?} is not a credential source; use default, client_secret, \
                 client_certificate, workload_identity, managed_identity or azure_cli"
            ),
        )
    })?;
    if let Some(graph_url) = &tenant.graph_url {
        check_endpoint(graph_url).map_err(|message| ("graph_url".to_string(), message))?;
    }
    if let Some(authority_url) = &tenant.authority_url {
        check_authority_url(authority_url, source_name, credential)
            .map_err(|message| ("authority_url".to_string(), message))?;
    }
    if let Some(arm_url) = &tenant.arm_url {
        check_endpoint(arm_url).map_err(|message| ("arm_url".to_string(), message))?;
    }
    check_arm_scopes(tenant)?;
    let certificate_path = match &tenant.certificate_path {
        Some(path) => Some(
            resolve_certificate_path(path, folder, source_name, credential)
                .map_err(|message| ("certificate_path".to_string(), message))?,
        ),
        None => None,
    };
    Ok(AzureTenantSettings {
        tenant_id,
        cloud,
        credential,
        client_id: tenant.client_id.clone(),
        certificate_path,
        graph_url: tenant.graph_url.clone(),
        authority_url: tenant.authority_url.clone(),
        page_size,
        concurrency,
        subscriptions: tenant.subscriptions.clone(),
        management_groups: tenant.management_groups.clone(),
        arm_url: tenant.arm_url.clone(),
    })
}

/// Accepts subscription ids that are GUIDs and management group ids that
/// Azure allows (letters, digits, `-`, `_`, `(`, `)` and `.`, at most 90),
/// because both go into Azure Resource Manager URL paths.
fn check_arm_scopes(tenant: &AzureTenantFile) -> Result<(), KeyError> {
    for (position, subscription) in tenant.subscriptions.iter().enumerate() {
        if !is_guid(subscription) {
            return Err((
                format!("subscriptions[{position}]"),
                format!("{subscription:?} is not a subscription id (a GUID)"),
            ));
        }
    }
    for (position, group) in tenant.management_groups.iter().enumerate() {
        let allowed = |c: char| c.is_ascii_alphanumeric() || "-_().".contains(c);
        if group.is_empty() || group.len() > 90 || !group.chars().all(allowed) {
            return Err((
                format!("management_groups[{position}]"),
                format!(
                    "{group:?} is not a management group id: use its id (letters, digits, \
                     -, _, (, ) and . only), not its display name"
                ),
            ));
        }
    }
    Ok(())
}

/// Accepts a certificate path only for the `client_certificate` credential,
/// and resolves a relative one against the config file's folder.
fn resolve_certificate_path(
    path: &Path,
    folder: &Path,
    source_name: &str,
    credential: AzureCredentialSource,
) -> Result<PathBuf, String> {
    if credential != AzureCredentialSource::ClientCertificate {
        return Err(format!(
            "is used only with credential = \"client_certificate\", not {source_name:?}; \
             set that credential or remove certificate_path"
        ));
    }
    if path.as_os_str().is_empty() {
        return Err("is empty; give the path of a PKCS#12 (.pfx, .p12) or PEM file".to_string());
    }
    Ok(folder.join(path))
}

/// Accepts an `https://` URL with a host and no path, query or fragment,
/// for the credentials that request tokens from an Entra authority.
///
/// azure_identity 1.0 rejects an authority host that is not HTTPS, and
/// replaces any path with `/{tenant}/oauth2/v2.0/token`, so a path here
/// would be ignored without a word.
fn check_authority_url(
    url: &str,
    source_name: &str,
    credential: AzureCredentialSource,
) -> Result<(), String> {
    if matches!(
        credential,
        AzureCredentialSource::ManagedIdentity | AzureCredentialSource::AzureCli
    ) {
        return Err(format!(
            "is not used by credential = {source_name:?}, which gets its token without \
             an authority; remove authority_url"
        ));
    }
    let expected = "must be an https:// URL with a host and no path, such as \
                    \"https://login.example.net\" or \"https://127.0.0.1:8443\"";
    check_endpoint(url).map_err(|_| format!("{url:?} {expected}"))?;
    let uri: http::Uri = url
        .parse()
        .map_err(|error| format!("{url:?} is not a valid URL: {error}"))?;
    let https = uri.scheme_str() == Some("https");
    let bare = uri.path() == "/" && uri.query().is_none() && !url.contains('#');
    if https && bare {
        Ok(())
    } else {
        Err(format!("{url:?} {expected}"))
    }
}

/// Accepts an absolute `http://` or `https://` URL with a host and a valid port.
fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let uri: http::Uri = endpoint
        .parse()
        .map_err(|error| format!("{endpoint:?} is not a valid URL: {error}"))?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    let host_ok = uri.host().is_some_and(|host| !host.is_empty());
    // http::Uri accepts any digits as a port; a port must also fit in 16 bits.
    let authority = uri.authority().map_or("", |authority| authority.as_str());
    let port = authority
        .rsplit_once(':')
        .map(|(_, port)| port)
        .filter(|port| !port.contains(']'));
    let port_ok = port.is_none_or(|port| port.parse::<u16>().is_ok());
    if scheme_ok && host_ok && port_ok {
        Ok(())
    } else {
        Err(format!(
            "{endpoint:?} must be an http:// or https:// URL with a host"
        ))
    }
}

fn resolve_retry(file: &RetryFile) -> Result<RetrySettings, KeyError> {
    let defaults = RetrySettings::default();
    let max_attempts = file.max_attempts.unwrap_or(defaults.max_attempts);
    if !(1..=20).contains(&max_attempts) {
        return Err((
            "retry.max_attempts".into(),
            format!("{max_attempts} is out of range; use 1 to 20"),
        ));
    }
    let attempt_timeout = file
        .attempt_timeout_seconds
        .map_or(defaults.attempt_timeout, Duration::from_secs);
    if attempt_timeout.is_zero() || attempt_timeout > Duration::from_secs(3600) {
        return Err((
            "retry.attempt_timeout_seconds".into(),
            format!(
                "{} is out of range; use 1 to 3600",
                attempt_timeout.as_secs()
            ),
        ));
    }
    let initial_backoff = file
        .initial_backoff_ms
        .map_or(defaults.initial_backoff, Duration::from_millis);
    let max_backoff = file
        .max_backoff_ms
        .map_or(defaults.max_backoff, Duration::from_millis);
    if max_backoff > Duration::from_secs(300) {
        return Err((
            "retry.max_backoff_ms".into(),
            "must be at most 300000 (five minutes)".into(),
        ));
    }
    if initial_backoff > max_backoff {
        return Err((
            "retry.initial_backoff_ms".into(),
            format!(
                "{} is larger than max_backoff_ms ({})",
                initial_backoff.as_millis(),
                max_backoff.as_millis()
            ),
        ));
    }
    Ok(RetrySettings {
        max_attempts,
        initial_backoff,
        max_backoff,
        attempt_timeout,
    })
}

fn resolve_account(
    account: &AwsAccountFile,
    concurrency: usize,
) -> Result<AwsAccountSettings, KeyError> {
    if let Some(account_id) = &account.account_id {
        let valid = account_id.len() == 12 && account_id.bytes().all(|b| b.is_ascii_digit());
        if !valid {
            return Err((
                "account_id".into(),
                format!("{account_id:?} is not a 12-digit AWS account id"),
            ));
        }
    }
    if let Some(role_arn) = &account.role_arn {
        check_role_arn(role_arn)?;
    }
    if account.external_id.is_some() && account.role_arn.is_none() {
        return Err((
            "external_id".into(),
            "is used only with role_arn; add role_arn or remove it".into(),
        ));
    }
    if let Some(endpoint) = &account.endpoint_url {
        check_endpoint(endpoint).map_err(|message| ("endpoint_url".to_string(), message))?;
    }
    Ok(AwsAccountSettings {
        account_id: account.account_id.clone(),
        profile: account.profile.clone(),
        role_arn: account.role_arn.clone(),
        source_role_arn: None,
        external_id: account.external_id.clone(),
        endpoint_url: account.endpoint_url.clone(),
        region: account.region.clone(),
        concurrency,
        identity_center: resolve_identity_center(account)?,
    })
}

/// Reads the Identity Center keys of an account. Naming the region, the
/// instance or the identity store turns it on, so `identity_center =
/// false` with any of them is rejected.
fn resolve_identity_center(
    account: &AwsAccountFile,
) -> Result<Option<IdentityCenterSettings>, KeyError> {
    let named = account.identity_center_instance_arn.is_some()
        || account.identity_store_id.is_some()
        || account.identity_center_region.is_some();
    match (account.identity_center, named) {
        (Some(false), true) => {
            return Err((
                "identity_center".into(),
                "is false but identity_center_region, identity_center_instance_arn or \
                 identity_store_id is set; remove them or set identity_center = true"
                    .into(),
            ));
        }
        (Some(false), false) | (None, false) => return Ok(None),
        _ => {}
    }
    if let Some(arn) = &account.identity_center_instance_arn {
        let valid = arn.starts_with("arn:aws") && arn.contains(":sso:::instance/");
        if !valid {
            return Err((
                "identity_center_instance_arn".into(),
                format!(
                    "{arn:?} is not an instance ARN such as arn:aws:sso:::instance/ssoins-1234567890abcdef"
                ),
            ));
        }
    }
    if let Some(store) = &account.identity_store_id {
        let valid = !store.is_empty()
            && store
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !valid {
            return Err((
                "identity_store_id".into(),
                format!("{store:?} is not an identity store id such as d-1234567890"),
            ));
        }
    }
    Ok(Some(IdentityCenterSettings {
        region: account.identity_center_region.clone(),
        instance_arn: account.identity_center_instance_arn.clone(),
        identity_store_id: account.identity_store_id.clone(),
    }))
}

fn check_role_arn(role_arn: &str) -> Result<(), KeyError> {
    if role_arn.starts_with("arn:aws") && role_arn.contains(":role/") {
        return Ok(());
    }
    Err((
        "role_arn".into(),
        format!("{role_arn:?} is not a role ARN (arn:aws:iam::ACCOUNT:role/NAME)"),
    ))
}

/// Validates a limit on scopes collected at once.
fn check_scope_limit(key: &str, value: Option<usize>, default: usize) -> Result<usize, KeyError> {
    let value = value.unwrap_or(default);
    if (1..=64).contains(&value) {
        Ok(value)
    } else {
        Err((
            key.to_string(),
            format!("{value} is out of range; use 1 to 64"),
        ))
    }
}

fn resolve_scope_limits(file: &ConfigFile) -> Result<ScopeLimits, KeyError> {
    let defaults = ScopeLimits::default();
    Ok(ScopeLimits {
        global: check_scope_limit("scan.concurrency", file.scan.concurrency, defaults.global)?,
        aws: check_scope_limit(
            "aws.scopes_in_parallel",
            file.aws.scopes_in_parallel,
            defaults.aws,
        )?,
        azure: check_scope_limit(
            "azure.scopes_in_parallel",
            file.azure.scopes_in_parallel,
            defaults.azure,
        )?,
        gcp: check_scope_limit(
            "gcp.scopes_in_parallel",
            file.gcp.scopes_in_parallel,
            defaults.gcp,
        )?,
    })
}

/// Returns true for an IAM role name: 1 to 64 of `A-Za-z0-9+=,.@_-`.
fn is_role_name(name: &str) -> bool {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c);
    (1..=64).contains(&name.len()) && name.chars().all(allowed)
}

/// Validates a list of account ids under `key`: 12 digits, none repeated.
fn check_account_ids(key: &str, ids: &[String]) -> Result<(), KeyError> {
    for (index, id) in ids.iter().enumerate() {
        if !crate::collect::aws::is_account_id(id) {
            return Err((
                format!("{key}[{index}]"),
                format!("{id:?} is not a 12-digit AWS account id"),
            ));
        }
        if ids[..index].contains(id) {
            return Err((
                format!("{key}[{index}]"),
                format!("repeats account {id}; list each account once"),
            ));
        }
    }
    Ok(())
}

/// Validates one `[[aws.organizations]]` table. Errors name the key within the table.
fn resolve_organization(
    organization: &AwsOrganizationFile,
    concurrency: usize,
) -> Result<AwsOrganizationSettings, KeyError> {
    let member_role_name = organization.member_role_name.clone().ok_or_else(|| {
        (
            "member_role_name".to_string(),
            "is required: the name of the role idrift assumes in each member account, \
             such as \"idrift-reader\""
                .to_string(),
        )
    })?;
    if !is_role_name(&member_role_name) {
        return Err((
            "member_role_name".into(),
            format!(
                "{member_role_name:?} is not a role name: 1 to 64 letters, digits and +=,.@_- \
                 (the name only, without arn: or a path)"
            ),
        ));
    }
    if let Some(role_arn) = &organization.role_arn {
        check_role_arn(role_arn)?;
    }
    if let Some(external_id) = &organization.external_id
        && !(2..=1224).contains(&external_id.len())
    {
        return Err((
            "external_id".into(),
            "must be 2 to 1224 characters long".into(),
        ));
    }
    check_account_ids("include", &organization.include)?;
    check_account_ids("exclude", &organization.exclude)?;
    if let Some(both) = organization
        .include
        .iter()
        .find(|id| organization.exclude.contains(id))
    {
        return Err((
            "exclude".into(),
            format!("account {both} is in include too; remove it from one of the lists"),
        ));
    }
    if let Some(endpoint) = &organization.endpoint_url {
        check_endpoint(endpoint).map_err(|message| ("endpoint_url".to_string(), message))?;
    }
    Ok(AwsOrganizationSettings {
        profile: organization.profile.clone(),
        role_arn: organization.role_arn.clone(),
        member_role_name,
        external_id: organization.external_id.clone(),
        include: organization.include.clone(),
        exclude: organization.exclude.clone(),
        endpoint_url: organization.endpoint_url.clone(),
        region: organization.region.clone(),
        concurrency,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> Result<Config, ConfigError> {
        parse(Path::new("/etc/idrift/config.toml"), text)
    }

    #[test]
    fn parses_accounts_and_retry() {
        let config = parse_text(
            "snapshots = \"snaps\"\n[retry]\nmax_attempts = 3\n[[aws.accounts]]\naccount_id = \"123456789012\"\nprofile = \"audit\"\n",
        )
        .unwrap();
        assert_eq!(config.aws_accounts.len(), 1);
        assert_eq!(config.aws_accounts[0].profile.as_deref(), Some("audit"));
        assert_eq!(config.retry.max_attempts, 3);
        assert_eq!(config.snapshots, Some(PathBuf::from("/etc/idrift/snaps")));
    }

    #[test]
    fn unknown_key_names_the_key() {
        let error = parse_text("[[aws.accounts]]\nsecret_access_key = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("secret_access_key"), "{error}");
    }

    #[test]
    fn malformed_toml_gives_line_and_column() {
        let error = parse_text("[aws\n").unwrap_err().to_string();
        assert!(error.contains("line 1"), "{error}");
        assert!(error.contains("column"), "{error}");
    }

    #[test]
    fn parse_error_hides_the_line() {
        let error =
            parse_text("[[aws.accounts]]\naws_secret_access_key = \"wJalrXUtnFEMI/K7MDENG\"\n")
                .unwrap_err()
                .to_string();
        assert!(error.contains("aws_secret_access_key"), "{error}");
        assert!(!error.contains("wJalrXUtnFEMI"), "{error}");
    }

    #[test]
    fn invalid_endpoints_are_rejected() {
        for endpoint in [
            "http://",
            "http://[::1",
            "ftp://127.0.0.1",
            "http://127.0.0.1:99999",
        ] {
            let text = format!("[[aws.accounts]]\nendpoint_url = \"{endpoint}\"\n");
            let error = parse_text(&text).unwrap_err().to_string();
            assert!(error.contains("endpoint_url"), "{endpoint}: {error}");
        }
        assert!(parse_text("[[aws.accounts]]\nendpoint_url = \"http://127.0.0.1:5000\"\n").is_ok());
    }

    #[test]
    fn repeated_account_is_rejected() {
        let text = "[[aws.accounts]]\naccount_id = \"123456789012\"\n[[aws.accounts]]\naccount_id = \"123456789012\"\nprofile = \"x\"\n";
        let error = parse_text(text).unwrap_err().to_string();
        assert!(error.contains("aws.accounts[1]"), "{error}");
    }

    #[test]
    fn arm_scopes_are_validated() {
        let tenant = "[[azure.tenants]]\ntenant_id = \"72f988bf-86f1-41af-91ab-2d7cd011db47\"\n";
        let good = format!(
            "{tenant}subscriptions = [\"5b5c0000-0000-4000-8000-000000000001\"]\n\
             management_groups = [\"corp-(eu).1\"]\narm_url = \"http://127.0.0.1:9\"\n"
        );
        let config = parse_text(&good).unwrap();
        let settings = &config.azure_tenants[0];
        assert_eq!(settings.subscriptions.len(), 1);
        assert_eq!(settings.management_groups, vec!["corp-(eu).1".to_string()]);
        assert_eq!(settings.arm_url.as_deref(), Some("http://127.0.0.1:9"));

        let cases = [
            ("subscriptions = [\"my-sub\"]", "subscriptions[0]"),
            (
                "management_groups = [\"Corp Root\"]",
                "management_groups[0]",
            ),
            ("management_groups = [\"a/../b\"]", "management_groups[0]"),
            ("arm_url = \"ftp://x\"", "arm_url"),
        ];
        for (line, key) in cases {
            let error = parse_text(&format!("{tenant}{line}\n"))
                .unwrap_err()
                .to_string();
            assert!(
                error.contains(&format!("azure.tenants[0].{key}")),
                "{line}: {error}"
            );
        }
    }

    #[test]
    fn retry_bounds_are_checked() {
        assert!(parse_text("[retry]\nattempt_timeout_seconds = 9223372036854775807\n").is_err());
        assert!(parse_text("[retry]\ninitial_backoff_ms = 500\nmax_backoff_ms = 0\n").is_err());
    }

    #[test]
    fn example_config_parses() {
        let config = parse_text(include_str!("../config.example.toml")).unwrap();
        assert_eq!(config.aws_accounts.len(), 1);
        assert_eq!(config.aws_organizations.len(), 1);
        assert_eq!(
            config.aws_organizations[0].member_role_name,
            "idrift-reader"
        );
        assert_eq!(config.scope_limits, ScopeLimits::default());
        assert_eq!(config.azure_tenants.len(), 1);
        assert_eq!(config.gworkspace.customers, ["my_customer"]);
        assert_eq!(config.expected.len(), 4);
        assert!(config.attribution.enabled);
        assert_eq!(config.attribution.aws_region, "us-east-1");
    }

    #[test]
    fn attribution_is_validated() {
        let config = parse_text(
            "[attribution]\nenabled = true\nmargin_minutes = 5\n\
             [attribution.gcp]\nlogging_url = \"http://127.0.0.1:9/\"\n",
        )
        .unwrap();
        assert!(config.attribution.enabled);
        assert!(!config.attribution.all_findings);
        assert_eq!(config.attribution.margin, Duration::from_secs(300));
        assert_eq!(config.attribution.gcp_logging_url, "http://127.0.0.1:9");
        assert!(!parse_text("").unwrap().attribution.enabled);

        let cases = [
            (
                "[attribution]\nmax_lookups_per_scope = 0\n",
                "attribution.max_lookups_per_scope",
            ),
            (
                "[attribution.aws]\ncalls_per_second = 50\n",
                "attribution.aws.calls_per_second",
            ),
            (
                "[attribution.aws]\nregion = \"US East\"\n",
                "attribution.aws.region",
            ),
            (
                "[attribution.azure]\ngraph_url = \"graph\"\n",
                "attribution.azure.graph_url",
            ),
            (
                "[attribution]\nfirst_scan_window_days = 0\n",
                "attribution.first_scan_window_days",
            ),
        ];
        for (text, key) in cases {
            let error = parse_text(text).expect_err(text).to_string();
            assert!(error.contains(key), "{error}");
        }
        let error = parse_text("[attribution]\nenable = true\n").expect_err("typo");
        assert!(error.to_string().contains("enable"), "{error}");
    }

    #[test]
    fn gworkspace_customers_take_both_forms() {
        let listed = parse_text(
            "[gworkspace]\ncustomers = [\"C03az79cb\"]\ndirectory_url = \"http://127.0.0.1:9/\"\n",
        )
        .unwrap();
        assert_eq!(listed.gworkspace.customers, ["C03az79cb"]);
        assert_eq!(listed.gworkspace.directory_url, "http://127.0.0.1:9");
        assert_eq!(listed.gworkspace.page_size, 500);

        let tables = parse_text(
            "[[gworkspace.customers]]\n\n[[gworkspace.customers]]\ncustomer = \"C03az79cb\"\n",
        )
        .unwrap();
        assert_eq!(tables.gworkspace.customers, ["my_customer", "C03az79cb"]);
        let error = parse_text("[gworkspace]\ncustomers = [3]\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("gworkspace.customers[0]:"), "{error}");
    }

    #[test]
    fn identity_center_keys_are_read() {
        let off = parse_text("[[aws.accounts]]\naccount_id = \"123456789012\"\n").unwrap();
        assert_eq!(off.aws_accounts[0].identity_center, None);

        let on = parse_text("[[aws.accounts]]\nidentity_store_id = \"d-1234567890\"\n").unwrap();
        let settings = on.aws_accounts[0].identity_center.clone().expect("on");
        assert_eq!(settings.identity_store_id.as_deref(), Some("d-1234567890"));
        assert_eq!(settings.instance_arn, None);

        let bad = [
            (
                "identity_center = false\nidentity_store_id = \"d-1\"\n",
                "identity_center",
            ),
            (
                "identity_center_instance_arn = \"ssoins-1\"\n",
                "identity_center_instance_arn",
            ),
            ("identity_store_id = \"d 1\"\n", "identity_store_id"),
        ];
        for (keys, key) in bad {
            let error = parse_text(&format!("[[aws.accounts]]\n{keys}"))
                .unwrap_err()
                .to_string();
            assert!(error.contains(key), "{keys}: {error}");
        }
    }

    const ORGANIZATION: &str = "[[aws.organizations]]\nmember_role_name = \"idrift-reader\"\n";

    #[test]
    fn organization_is_parsed() {
        let text = format!(
            "{ORGANIZATION}profile = \"org\"\nexternal_id = \"idrift\"\ninclude = [\"222222222222\"]\n\
             endpoint_url = \"http://127.0.0.1:5000\"\n"
        );
        let organization = &parse_text(&text).unwrap().aws_organizations[0];
        assert_eq!(organization.profile.as_deref(), Some("org"));
        assert_eq!(organization.external_id.as_deref(), Some("idrift"));
        assert_eq!(organization.include, ["222222222222"]);
        assert_eq!(organization.concurrency, DEFAULT_AWS_CONCURRENCY);
    }

    #[test]
    fn organization_errors_name_key() {
        for (text, key) in [
            (
                "[[aws.organizations]]\nprofile = \"org\"\n",
                "member_role_name",
            ),
            (
                "[[aws.organizations]]\nmember_role_name = \"arn:aws:iam::1:role/x\"\n",
                "member_role_name",
            ),
            (
                &format!("{ORGANIZATION}role_arn = \"idrift\"\n"),
                "role_arn",
            ),
            (
                &format!("{ORGANIZATION}external_id = \"x\"\n"),
                "external_id",
            ),
            (
                &format!("{ORGANIZATION}include = [\"12345\"]\n"),
                "include[0]",
            ),
            (
                &format!("{ORGANIZATION}exclude = [\"222222222222\", \"222222222222\"]\n"),
                "exclude[1]",
            ),
            (
                &format!(
                    "{ORGANIZATION}include = [\"222222222222\"]\nexclude = [\"222222222222\"]\n"
                ),
                "exclude",
            ),
            (
                &format!("{ORGANIZATION}endpoint_url = \"ftp://x\"\n"),
                "endpoint_url",
            ),
            (&format!("{ORGANIZATION}accounts = []\n"), "accounts"),
        ] {
            let error = parse_text(text).unwrap_err().to_string();
            assert!(error.contains(key), "{text}: {error}");
        }
        let error = parse_text(&format!("{ORGANIZATION}role_arn = \"idrift\"\n"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("aws.organizations[0].role_arn"), "{error}");
    }

    #[test]
    fn scope_limits_are_checked() {
        let config =
            parse_text("[scan]\nconcurrency = 8\n[aws]\nscopes_in_parallel = 3\n[azure]\nscopes_in_parallel = 1\n[gcp]\nscopes_in_parallel = 5\n")
                .unwrap();
        let expected = ScopeLimits {
            global: 8,
            aws: 3,
            azure: 1,
            gcp: 5,
        };
        assert_eq!(config.scope_limits, expected);
        for (text, key) in [
            ("[scan]\nconcurrency = 0\n", "scan.concurrency"),
            ("[aws]\nscopes_in_parallel = 65\n", "aws.scopes_in_parallel"),
            (
                "[azure]\nscopes_in_parallel = 0\n",
                "azure.scopes_in_parallel",
            ),
            ("[gcp]\nscopes_in_parallel = 0\n", "gcp.scopes_in_parallel"),
            ("[scan]\nthreads = 2\n", "threads"),
        ] {
            let error = parse_text(text).unwrap_err().to_string();
            assert!(error.contains(key), "{text}: {error}");
        }
    }

    #[test]
    fn azure_tenant_is_validated() {
        let good = "[[azure.tenants]]\ntenant_id = \"72f988bf-86f1-41af-91ab-2d7cd011db47\"\ncloud = \"us_government\"\ncredential = \"managed_identity\"\n";
        let config = parse_text(good).unwrap();
        assert_eq!(config.azure_tenants[0].cloud, AzureCloud::UsGovernment);
        for (text, key) in [
            ("[[azure.tenants]]\ntenant_id = \"contoso\"\n", "tenant_id"),
            (
                "[[azure.tenants]]\ntenant_id = \"72f988bf-86f1-41af-91ab-2d7cd011db47\"\ncloud = \"mars\"\n",
                "cloud",
            ),
            (
                "[[azure.tenants]]\ntenant_id = \"72f988bf-86f1-41af-91ab-2d7cd011db47\"\ncredential = \"password\"\n",
                "credential",
            ),
        ] {
            let error = parse_text(text).unwrap_err().to_string();
            assert!(
                error.contains(&format!("azure.tenants[0].{key}")),
                "{error}"
            );
        }
    }

    const TENANT: &str =
        "[[azure.tenants]]\ntenant_id = \"72f988bf-86f1-41af-91ab-2d7cd011db47\"\n";

    #[test]
    fn client_certificate_path_is_resolved() {
        let text = format!(
            "{TENANT}credential = \"client_certificate\"\ncertificate_path = \"certs/idrift.pfx\"\n"
        );
        let tenant = &parse_text(&text).unwrap().azure_tenants[0];
        assert_eq!(tenant.credential, AzureCredentialSource::ClientCertificate);
        assert_eq!(
            tenant.certificate_path,
            Some(PathBuf::from("/etc/idrift/certs/idrift.pfx"))
        );

        let absolute = format!(
            "{TENANT}credential = \"client_certificate\"\ncertificate_path = \"/run/idrift.pem\"\n"
        );
        let tenant = &parse_text(&absolute).unwrap().azure_tenants[0];
        assert_eq!(
            tenant.certificate_path,
            Some(PathBuf::from("/run/idrift.pem"))
        );
    }

    #[test]
    fn certificate_path_needs_its_credential() {
        for credential in ["default", "client_secret", "managed_identity"] {
            let text = format!(
                "{TENANT}credential = \"{credential}\"\ncertificate_path = \"idrift.pfx\"\n"
            );
            let error = parse_text(&text).unwrap_err().to_string();
            assert!(
                error.contains("azure.tenants[0].certificate_path"),
                "{error}"
            );
            assert!(error.contains("client_certificate"), "{error}");
        }
        let empty =
            format!("{TENANT}credential = \"client_certificate\"\ncertificate_path = \"\"\n");
        let error = parse_text(&empty).unwrap_err().to_string();
        assert!(error.contains("is empty"), "{error}");
    }

    #[test]
    fn certificate_password_is_not_a_key() {
        let text = format!("{TENANT}certificate_password = \"Hunter2-not-here\"\n");
        let error = parse_text(&text).unwrap_err().to_string();
        assert!(error.contains("certificate_password"), "{error}");
        assert!(!error.contains("Hunter2-not-here"), "{error}");
    }

    #[test]
    fn authority_url_must_be_bare_https() {
        for url in [
            "http://127.0.0.1:8443",
            "https://login.example.net/tenant",
            "https://login.example.net?x=1",
            "https://",
            "login.example.net",
        ] {
            let text = format!("{TENANT}authority_url = \"{url}\"\n");
            let error = parse_text(&text).unwrap_err().to_string();
            assert!(
                error.contains("azure.tenants[0].authority_url"),
                "{url}: {error}"
            );
            assert!(error.contains("https://"), "{url}: {error}");
        }
        for url in ["https://127.0.0.1:8443", "https://login.example.net/"] {
            let text =
                format!("{TENANT}credential = \"client_secret\"\nauthority_url = \"{url}\"\n");
            let tenant = &parse_text(&text).unwrap().azure_tenants[0];
            assert_eq!(tenant.authority_url.as_deref(), Some(url));
        }
    }

    #[test]
    fn authority_url_is_rejected_without_authority() {
        for credential in ["managed_identity", "azure_cli"] {
            let text = format!(
                "{TENANT}credential = \"{credential}\"\nauthority_url = \"https://127.0.0.1:8443\"\n"
            );
            let error = parse_text(&text).unwrap_err().to_string();
            assert!(error.contains("authority_url"), "{error}");
            assert!(error.contains(credential), "{error}");
        }
    }

    #[test]
    fn bad_account_id_names_key() {
        let error = parse_text("[[aws.accounts]]\naccount_id = \"12345\"\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("aws.accounts[0].account_id"), "{error}");
    }
}

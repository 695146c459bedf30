//! Resolved settings: the config file merged with command-line flags,
//! validated before any work starts. The pipeline reads only these types.

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
    /// External id for the role assumption.
    pub external_id: Option<String>,
    /// Endpoint URL for IAM and STS, for emulators and fakes.
    pub endpoint_url: Option<String>,
    /// Signing region; IAM is global and signs in `us-east-1` by default.
    pub region: Option<String>,
    /// Users whose credentials are listed at once.
    pub concurrency: usize,
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

/// Report output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReportFormat {
    /// Aligned text for people.
    #[default]
    Table,
    /// JSON for machines.
    Json,
}

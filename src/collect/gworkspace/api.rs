//! Google Workspace collector: application default credentials from
//! google-cloud-auth with the Directory read scope, and the Admin SDK
//! Directory API `users.list` over the Google Cloud REST client.
//!
//! The credentials must act as a Workspace administrator. An
//! `authorized_user` file from `gcloud auth application-default login
//! --scopes=...` of an admin does. Domain-wide delegation (a service
//! account acting as an admin) is not supported, because google-cloud-auth
//! 1.19 cannot put the admin in a service account token's `sub` claim.

use std::sync::atomic::{AtomicU64, Ordering};

use google_cloud_auth::credentials::{Builder, Credentials};
use tracing::info;

use super::records::{assemble, customer_of, users};
use crate::collect::gcp::api::credential_source;
use crate::collect::gcp::client::{CallError, CredentialsFactory, GcpClient, Hints, encode};
use crate::collect::{CollectError, Collected, error_chain};
use crate::settings::{GworkspaceSettings, RetrySettings};

/// The OAuth scope `users.list` needs, read-only.
pub const DIRECTORY_USER_READONLY_SCOPE: &str =
    "https://www.googleapis.com/auth/admin.directory.user.readonly";

fn unavailable(customer: &str, reason: String) -> CollectError {
    CollectError::Unavailable {
        provider: "gworkspace",
        scope: customer.to_string(),
        reason,
    }
}

/// Builds application default credentials that ask for the Directory scope.
fn build_credentials(source: &str) -> Result<Credentials, String> {
    Builder::default()
        .with_scopes([DIRECTORY_USER_READONLY_SCOPE])
        .build()
        .map_err(|error| {
            format!(
                "cannot load application default credentials from {source}: {}; run `gcloud auth \
                 application-default login --scopes={DIRECTORY_USER_READONLY_SCOPE},\
                 https://www.googleapis.com/auth/cloud-platform` as a Workspace admin, or set \
                 GOOGLE_APPLICATION_CREDENTIALS to such a file",
                error_chain(&error)
            )
        })
}

/// Returns the advice that Directory API errors give the user.
fn hints() -> Hints {
    Hints {
        unreachable: "check gworkspace.directory_url, the network and proxy settings".to_string(),
        forbidden: format!(
            "the credentials must belong to a Workspace admin whose role has the Users read \
             privilege, the token needs the {DIRECTORY_USER_READONLY_SCOPE} scope, and the Admin \
             SDK API must be enabled in the credentials' Google Cloud project"
        ),
        not_found: "check the customer id in gworkspace.customers".to_string(),
    }
}

/// Collects every configured customer, one after the other. A customer
/// whose users cannot all be listed is an error in the list; the others
/// go on.
pub async fn collect_customers(
    settings: &GworkspaceSettings,
    retry: &RetrySettings,
) -> Vec<Result<Collected, CollectError>> {
    let source = credential_source();
    let factory_source = source.clone();
    let factory: CredentialsFactory = Box::new(move || build_credentials(&factory_source));
    let client = match GcpClient::new(factory, source.clone(), retry, 1) {
        Ok(client) => client.with_hints(hints()),
        // Without credentials, no customer can be scanned.
        Err(reason) => {
            return settings
                .customers
                .iter()
                .map(|customer| Err(unavailable(customer, reason.clone())))
                .collect();
        }
    };

    let mut results = Vec::new();
    for customer in &settings.customers {
        info!(customer, "scanning Google Workspace customer");
        results.push(collect_customer(&client, settings, customer, &source).await);
    }
    results
}

/// Lists one customer's users. Any failure fails the customer as a whole,
/// because users are its only collection, and the snapshot on disk stays as
/// it is. A refused call names `source`, the credentials used, because an
/// admin's login and a machine's service account are easily mixed up.
async fn collect_customer(
    client: &GcpClient,
    settings: &GworkspaceSettings,
    customer: &str,
    source: &str,
) -> Result<Collected, CollectError> {
    let calls = AtomicU64::new(0);
    let url = format!(
        "{}/admin/directory/v1/users?customer={}&maxResults={}&projection=basic",
        settings.directory_url,
        encode(customer),
        settings.page_size
    );
    let what = format!("Workspace users of customer {customer}");
    let records = client
        .list(&calls, &what, &url, "users")
        .await
        .map_err(|error| match error {
            CallError::Credentials(reason) => unavailable(customer, reason),
            CallError::Failed(reason) => unavailable(
                customer,
                format!("{reason}; the credentials came from {source}"),
            ),
        })?;

    let users = users(&records);
    let customer_id = customer_of(customer, &users.customer_ids)
        .map_err(|reason| unavailable(customer, format!("{what}: {reason}")))?;
    info!(customer = %customer_id, users = users.identities.len(), "listed users");
    Ok(assemble(&customer_id, users, calls.load(Ordering::Relaxed)))
}

//! IAM identity providers: the OpenID Connect and SAML providers whose
//! tokens and assertions can be exchanged for a role's credentials.
//!
//! `ListOpenIDConnectProviders` returns only ARNs, so each OIDC provider
//! costs one `GetOpenIDConnectProvider` for its URL, client ids and
//! thumbprints. `ListSAMLProviders` returns the ARN, creation time and the
//! metadata's expiry in one call. Neither listing is paged.

use serde::Deserialize;
use tracing::debug;

use super::api::{denied_hint, describe_error, is_no_such_entity};
use super::details::{format_timestamp, normalize_timestamp};
use crate::model::{Identity, IdentityKind, aws_attribute};

/// One OIDC provider as `GetOpenIDConnectProvider` describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OidcProvider {
    /// `arn:aws:iam::<account>:oidc-provider/<url>`.
    pub arn: String,
    /// The issuer URL without its scheme, such as `token.actions.githubusercontent.com`.
    pub url: String,
    /// The audiences the provider accepts.
    pub client_ids: Vec<String>,
    /// Thumbprints of the issuer's server certificates.
    pub thumbprints: Vec<String>,
    /// Creation time, RFC 3339 in UTC.
    pub created: Option<String>,
}

/// One SAML provider as `ListSAMLProviders` lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SamlProvider {
    /// `arn:aws:iam::<account>:saml-provider/<name>`.
    pub arn: String,
    /// When the metadata document expires, as the source wrote it.
    #[serde(default)]
    pub valid_until: Option<String>,
    /// Creation time as the source wrote it.
    #[serde(default)]
    pub create_date: Option<String>,
}

/// Joins a list into a sorted, comma-separated attribute value.
fn sorted_list(values: &[String]) -> String {
    let mut sorted = values.to_vec();
    sorted.sort();
    sorted.dedup();
    sorted.join(", ")
}

impl OidcProvider {
    /// Builds the provider's record, keyed by its ARN: IAM gives providers no other id.
    pub fn to_identity(&self) -> Identity {
        let name = if self.url.is_empty() {
            self.arn
                .rsplit_once("oidc-provider/")
                .map_or("", |(_, url)| url)
        } else {
            self.url.trim_start_matches("https://")
        };
        let mut identity = Identity::new(&self.arn, IdentityKind::AwsOidcProvider, name);
        identity.arn = Some(self.arn.clone());
        identity.created = self.created.clone();
        identity.attributes.insert(
            aws_attribute::CLIENT_IDS.to_string(),
            sorted_list(&self.client_ids),
        );
        identity.attributes.insert(
            aws_attribute::THUMBPRINTS.to_string(),
            sorted_list(&self.thumbprints),
        );
        identity
    }
}

impl SamlProvider {
    /// Builds the provider's record, keyed by its ARN and named by the
    /// name that ends the ARN.
    pub fn to_identity(&self) -> Identity {
        let name = self
            .arn
            .rsplit_once("saml-provider/")
            .map_or(self.arn.as_str(), |(_, name)| name);
        let mut identity = Identity::new(&self.arn, IdentityKind::AwsSamlProvider, name);
        identity.arn = Some(self.arn.clone());
        identity.created = self.create_date.as_deref().map(normalize_timestamp);
        if let Some(valid_until) = &self.valid_until {
            identity.attributes.insert(
                aws_attribute::VALID_UNTIL.to_string(),
                normalize_timestamp(valid_until),
            );
        }
        identity
    }
}

/// Lists the OIDC providers with their details. A provider deleted between
/// the listing and its `GetOpenIDConnectProvider` is left out.
pub async fn list_oidc_providers(
    iam: &aws_sdk_iam::Client,
    account_id: &str,
) -> Result<Vec<Identity>, String> {
    const LIST: &str = "iam:ListOpenIDConnectProviders";
    const GET: &str = "iam:GetOpenIDConnectProvider";

    let listing = iam
        .list_open_id_connect_providers()
        .send()
        .await
        .map_err(|error| denied_hint(account_id, LIST, &describe_error(LIST, &error)))?;
    let mut identities = Vec::new();
    for entry in listing.open_id_connect_provider_list() {
        // The ARN is the provider's only id: a provider without it would
        // read as deleted, so it fails the listing.
        let Some(arn) = entry.arn().filter(|arn| !arn.is_empty()) else {
            return Err(format!("{LIST} returned a provider without an ARN"));
        };
        let output = match iam
            .get_open_id_connect_provider()
            .open_id_connect_provider_arn(arn)
            .send()
            .await
        {
            Ok(output) => output,
            Err(error) if is_no_such_entity(&error) => {
                debug!(arn, "OIDC provider deleted during the scan");
                continue;
            }
            Err(error) => {
                let description = describe_error(&format!("{GET} for {arn}"), &error);
                return Err(denied_hint(account_id, GET, &description));
            }
        };
        let provider = OidcProvider {
            arn: arn.to_string(),
            url: output.url().unwrap_or_default().to_string(),
            client_ids: output.client_id_list().to_vec(),
            thumbprints: output.thumbprint_list().to_vec(),
            created: output.create_date().map(format_timestamp),
        };
        identities.push(provider.to_identity());
    }
    Ok(identities)
}

/// Lists the SAML providers.
pub async fn list_saml_providers(
    iam: &aws_sdk_iam::Client,
    account_id: &str,
) -> Result<Vec<Identity>, String> {
    const LIST: &str = "iam:ListSAMLProviders";

    let listing = iam
        .list_saml_providers()
        .send()
        .await
        .map_err(|error| denied_hint(account_id, LIST, &describe_error(LIST, &error)))?;
    // As for OIDC, a provider without its ARN fails the listing.
    listing
        .saml_provider_list()
        .iter()
        .map(|entry| {
            let arn = entry
                .arn()
                .filter(|arn| !arn.is_empty())
                .ok_or_else(|| format!("{LIST} returned a provider without an ARN"))?;
            let provider = SamlProvider {
                arn: arn.to_string(),
                valid_until: entry.valid_until().map(format_timestamp),
                create_date: entry.create_date().map(format_timestamp),
            };
            Ok(provider.to_identity())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oidc_record_sorts_lists_and_strips_scheme() {
        let provider = OidcProvider {
            arn: "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"
                .to_string(),
            url: "https://token.actions.githubusercontent.com".to_string(),
            client_ids: vec!["sts.amazonaws.com".to_string(), "a".to_string()],
            thumbprints: Vec::new(),
            created: None,
        };
        let identity = provider.to_identity();
        assert_eq!(identity.name, "token.actions.githubusercontent.com");
        assert_eq!(
            identity.attributes[aws_attribute::CLIENT_IDS],
            "a, sts.amazonaws.com"
        );
        assert_eq!(identity.id, provider.arn);
    }

    #[test]
    fn saml_record_is_named_by_its_arn() {
        let provider = SamlProvider {
            arn: "arn:aws:iam::123456789012:saml-provider/Okta".to_string(),
            valid_until: Some("2125-01-01T00:00:00+00:00".to_string()),
            create_date: None,
        };
        let identity = provider.to_identity();
        assert_eq!(identity.name, "Okta");
        assert_eq!(
            identity.attributes[aws_attribute::VALID_UNTIL],
            "2125-01-01T00:00:00Z"
        );
    }
}

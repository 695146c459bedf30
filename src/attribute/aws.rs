//! AWS attribution: CloudTrail `LookupEvents` in the region that records
//! IAM's events (us-east-1 by default, because IAM is a global service).
//! Events are looked up by the name of the resource the finding is about,
//! paged by `NextToken`, and kept when their name is one the change maps to.
//!
//! Calls are spaced to `aws_calls_per_second` per account, LookupEvents'
//! quota being 2 per second per account and region. The SDK retries
//! `ThrottlingException` with the `[retry]` settings.
//! NOTE: those SDK retries are not spaced by the rate limiter, only by the
//! SDK's backoff.

use aws_sdk_cloudtrail::error::ProvideErrorMetadata;
use aws_sdk_cloudtrail::types::{LookupAttribute, LookupAttributeKey};
use serde_json::Value;

use super::{AuditEvent, Lookups, RateLimiter, Window, text};
use crate::collect::aws::api::{describe_error, load_sdk_config};
use crate::judge::Finding;
use crate::model::{IdentityKind, Provider};
use crate::settings::{AttributionSettings, AwsAccountSettings, RetrySettings};

/// Events per page (LookupEvents' maximum).
const PAGE_SIZE: i32 = 50;

/// Pages read for one finding before the lookup is given up.
const MAX_PAGES: usize = 20;

/// One search: the resource name CloudTrail indexes, and the event names
/// that count as the change.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Query {
    resource_name: String,
    event_names: &'static [&'static str],
}

/// The reason IAM Identity Center findings carry no actor.
const IDENTITY_CENTER_UNSEARCHED: &str = "IAM Identity Center records its events in \
    CloudTrail in the instance's own region, which attribution does not search yet; run the \
    finding's audit lookup command there";

/// Returns true for findings about IAM Identity Center users and
/// assignments, whose events CloudTrail keeps in the instance's region.
fn is_identity_center(finding: &Finding) -> bool {
    matches!(
        finding.identity_kind,
        Some(IdentityKind::AwsIdentityCenterUser | IdentityKind::AwsPermissionSetAssignment)
    )
}

/// Attributes the findings of one account.
pub async fn attribute_account(
    account: &AwsAccountSettings,
    window: Window,
    lookups: Lookups,
    settings: &AttributionSettings,
    retry: &RetrySettings,
) -> Vec<(usize, super::Attribution)> {
    let config = load_sdk_config(account, retry).await;
    let mut builder = aws_sdk_cloudtrail::config::Builder::from(&config).region(
        aws_sdk_cloudtrail::config::Region::new(settings.aws_region.clone()),
    );
    if let Some(endpoint) = &settings.aws_endpoint_url {
        builder = builder.endpoint_url(endpoint);
    }
    let client = aws_sdk_cloudtrail::Client::from_conf(builder.build());
    let limiter = RateLimiter::per_second(settings.aws_calls_per_second);

    let scope = lookups
        .first()
        .map(|(_, finding)| finding.scope.clone())
        .unwrap_or_default();
    let region = settings.aws_region.as_str();
    let (mut results, lookups) = super::split_unsearched(
        lookups,
        window,
        IDENTITY_CENTER_UNSEARCHED,
        is_identity_center,
    );

    let searched = super::run_lookups(Provider::Aws, &scope, window, lookups, |finding| {
        let (client, limiter) = (&client, &limiter);
        async move { lookup_finding(client, limiter, region, window, &finding).await }
    })
    .await;
    results.extend(searched);
    results
}

/// Runs a finding's searches and keeps the events that match it.
async fn lookup_finding(
    client: &aws_sdk_cloudtrail::Client,
    limiter: &RateLimiter,
    region: &str,
    window: Window,
    finding: &Finding,
) -> Result<Vec<AuditEvent>, String> {
    let credential_id = finding.evidence.get("credential_id");
    let mut events = Vec::new();
    for query in queries(finding) {
        for record in lookup_events(client, limiter, window, &query.resource_name).await? {
            let Some(event) = parse_event(&record, region) else {
                continue;
            };
            let wanted = query.event_names.contains(&event.event_name.as_str())
                && credential_matches(&record, credential_id.map(String::as_str));
            if wanted {
                events.push(event);
            }
        }
    }
    Ok(events)
}

/// Reads every page of `LookupEvents` for one resource name in the window.
async fn lookup_events(
    client: &aws_sdk_cloudtrail::Client,
    limiter: &RateLimiter,
    window: Window,
    resource_name: &str,
) -> Result<Vec<Value>, String> {
    let attribute = LookupAttribute::builder()
        .attribute_key(LookupAttributeKey::ResourceName)
        .attribute_value(resource_name)
        .build()
        .map_err(|error| format!("cannot build the LookupEvents request: {error}"))?;
    let mut records = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        limiter.wait().await;
        let output = client
            .lookup_events()
            .lookup_attributes(attribute.clone())
            .start_time(aws_smithy_types::DateTime::from_secs(window.start))
            .end_time(aws_smithy_types::DateTime::from_secs(window.end))
            .max_results(PAGE_SIZE)
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|error| describe_lookup_error(&error))?;
        for event in output.events() {
            let parsed = event
                .cloud_trail_event()
                .and_then(|text| serde_json::from_str::<Value>(text).ok());
            // An event whose JSON cannot be read still names its caller.
            let fallback = serde_json::json!({
                "eventID": event.event_id(),
                "eventName": event.event_name(),
                "eventTime": event.event_time().map(crate::collect::aws::details::format_timestamp),
                "userIdentity": {"userName": event.username()},
            });
            records.push(parsed.unwrap_or(fallback));
        }
        match output.next_token().filter(|next| !next.is_empty()) {
            None => return Ok(records),
            Some(next) if token.as_deref() == Some(next) => {
                return Err("LookupEvents did not advance: NextToken repeated".to_string());
            }
            Some(next) => token = Some(next.to_string()),
        }
    }
    Err(format!(
        "LookupEvents returned more than {MAX_PAGES} pages of events for {resource_name}; \
         narrow the window by scanning more often"
    ))
}

fn describe_lookup_error<E>(
    error: &aws_sdk_cloudtrail::error::SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> String
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let description = describe_error("CloudTrail LookupEvents", error);
    let denied = error
        .as_service_error()
        .and_then(ProvideErrorMetadata::code)
        .is_some_and(|code| code.starts_with("AccessDenied") || code == "UnauthorizedOperation");
    if denied {
        // The shared hint names the scan's IAM policy; this call needs more.
        let base = description
            .split(" (grant the scanning principal")
            .next()
            .unwrap_or(&description);
        format!("{base} (grant the scanning principal cloudtrail:LookupEvents)")
    } else {
        description
    }
}

/// Reads the actor, address, agent, time and id of a CloudTrail event
/// record; returns none for a record without an event id.
fn parse_event(record: &Value, region: &str) -> Option<AuditEvent> {
    let event_id = text(&record["eventID"])?;
    let identity = &record["userIdentity"];
    let actor = text(&identity["arn"])
        .or_else(|| text(&identity["principalId"]))
        .or_else(|| text(&identity["userName"]))
        .or_else(|| text(&identity["invokedBy"]))
        .unwrap_or_else(|| "unknown".to_string());
    let open_command = format!(
        "aws cloudtrail lookup-events --region {region} --lookup-attributes \
         AttributeKey=EventId,AttributeValue={event_id}"
    );
    Some(AuditEvent {
        actor,
        source_ip: text(&record["sourceIPAddress"]),
        user_agent: text(&record["userAgent"]),
        time: text(&record["eventTime"]).unwrap_or_default(),
        event_id,
        event_name: text(&record["eventName"]).unwrap_or_default(),
        open_command,
    })
}

/// Returns true unless the event names another access key than the
/// finding's: `CreateAccessKey` returns the new key's id.
fn credential_matches(record: &Value, credential_id: Option<&str>) -> bool {
    let created = record["responseElements"]["accessKey"]["accessKeyId"].as_str();
    let updated = record["requestParameters"]["accessKeyId"].as_str();
    match (credential_id, created.or(updated)) {
        (Some(expected), Some(found)) if expected.starts_with("AKIA") => expected == found,
        _ => true,
    }
}

/// Maps a finding to its searches: the IAM calls that make the change,
/// looked up by the user's or role's name (or the group's, for a grant
/// through a group).
fn queries(finding: &Finding) -> Vec<Query> {
    let name = finding.identity_name.clone();
    let user = finding.identity_kind == Some(IdentityKind::AwsUser);
    let query = |resource_name: String, event_names| Query {
        resource_name,
        event_names,
    };
    // Instance profiles and identity providers are searched by their own calls.
    if let Some(names) = access_path_events(finding) {
        let resource = finding.arn.clone().unwrap_or(name);
        return vec![query(resource, names)];
    }

    let console_password = finding.evidence.get("credential_id").map(String::as_str)
        == Some(crate::collect::aws::CONSOLE_PASSWORD_ID);
    let names: &'static [&'static str] = match (finding.change, user) {
        ("identity_added" | "identity_recreated", true) => &["CreateUser"],
        ("identity_added" | "identity_recreated", false) => &["CreateRole"],
        ("identity_removed", true) => &["DeleteUser"],
        ("identity_removed", false) => &["DeleteRole", "DeleteServiceLinkedRole"],
        ("credential_added", _) if console_password => &["CreateLoginProfile"],
        ("credential_added", _) => &["CreateAccessKey"],
        ("credential_removed", _) if console_password => &["DeleteLoginProfile"],
        ("credential_removed", _) => &["DeleteAccessKey"],
        ("credential_status_changed", _) => &["UpdateAccessKey"],
        ("privilege_added", true) => &["AttachUserPolicy", "PutUserPolicy", "AddUserToGroup"],
        ("privilege_added", false) => &["AttachRolePolicy", "PutRolePolicy"],
        ("privilege_removed", true) => &[
            "DetachUserPolicy",
            "DeleteUserPolicy",
            "RemoveUserFromGroup",
        ],
        ("privilege_removed", false) => &["DetachRolePolicy", "DeleteRolePolicy"],
        ("trust_changed", _) => &["UpdateAssumeRolePolicy"],
        ("renamed" | "path_changed", true) => &["UpdateUser"],
        ("renamed" | "path_changed", false) => &["UpdateRole"],
        _ => &["UpdateUser", "UpdateRole", "TagUser", "TagRole"],
    };
    let mut queries = vec![query(name, names)];
    // A grant through a group was made on the group, or by adding the user to it.
    let group = finding.evidence.get("group");
    if finding.change == "privilege_added"
        && let Some(group) = group
    {
        queries.push(query(
            group.clone(),
            &["AttachGroupPolicy", "PutGroupPolicy"],
        ));
    }
    queries
}

/// Returns the IAM calls that change an instance profile or an identity
/// provider, for findings about those; none for users and roles.
fn access_path_events(finding: &Finding) -> Option<&'static [&'static str]> {
    let added = matches!(finding.change, "identity_added" | "identity_recreated");
    let removed = finding.change == "identity_removed";
    let names: &'static [&'static str] = match finding.identity_kind? {
        IdentityKind::AwsInstanceProfile if added => {
            &["CreateInstanceProfile", "AddRoleToInstanceProfile"]
        }
        IdentityKind::AwsInstanceProfile if removed => {
            &["DeleteInstanceProfile", "RemoveRoleFromInstanceProfile"]
        }
        IdentityKind::AwsInstanceProfile => {
            &["AddRoleToInstanceProfile", "RemoveRoleFromInstanceProfile"]
        }
        IdentityKind::AwsOidcProvider if added => &["CreateOpenIDConnectProvider"],
        IdentityKind::AwsOidcProvider if removed => &["DeleteOpenIDConnectProvider"],
        IdentityKind::AwsOidcProvider => &[
            "UpdateOpenIDConnectProviderThumbprint",
            "AddClientIDToOpenIDConnectProvider",
            "RemoveClientIDFromOpenIDConnectProvider",
        ],
        IdentityKind::AwsSamlProvider if added => &["CreateSAMLProvider"],
        IdentityKind::AwsSamlProvider if removed => &["DeleteSAMLProvider"],
        IdentityKind::AwsSamlProvider => &["UpdateSAMLProvider"],
        _ => return None,
    };
    Some(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_record_gives_actor_and_command() {
        let record = serde_json::json!({
            "eventID": "e1", "eventName": "CreateUser", "eventTime": "2026-01-01T00:00:00Z",
            "sourceIPAddress": "203.0.113.9", "userAgent": "aws-cli/2",
            "userIdentity": {"arn": "arn:aws:iam::123456789012:user/ana"},
        });
        let event = parse_event(&record, "us-east-1").expect("an event");
        assert_eq!(event.actor, "arn:aws:iam::123456789012:user/ana");
        assert_eq!(event.source_ip.as_deref(), Some("203.0.113.9"));
        assert!(
            event.open_command.ends_with("AttributeValue=e1"),
            "{}",
            event.open_command
        );
        assert!(parse_event(&serde_json::json!({}), "us-east-1").is_none());
    }

    #[test]
    fn other_access_key_does_not_match() {
        let record =
            serde_json::json!({"responseElements": {"accessKey": {"accessKeyId": "AKIA2"}}});
        assert!(credential_matches(&record, Some("AKIA2")));
        assert!(!credential_matches(&record, Some("AKIA1")));
        assert!(credential_matches(&serde_json::json!({}), Some("AKIA1")));
    }

    #[test]
    fn codeless_error_names_endpoint() {
        use aws_sdk_cloudtrail::operation::lookup_events::LookupEventsError;
        use aws_smithy_runtime_api::http::{Response, StatusCode};
        use aws_smithy_types::body::SdkBody;
        use aws_smithy_types::error::ErrorMetadata;

        let status = StatusCode::try_from(404).expect("status");
        let raw = Response::new(status, SdkBody::empty());
        let error = aws_sdk_cloudtrail::error::SdkError::service_error(
            LookupEventsError::generic(ErrorMetadata::builder().build()),
            raw,
        );
        let text = describe_lookup_error(&error);
        assert!(text.contains("HTTP 404 and no AWS error code"), "{text}");
        assert!(text.contains("endpoint_url"), "{text}");
    }

    #[test]
    fn access_paths_use_own_calls() {
        use crate::attribute::test_finding;
        let arn = "arn:aws:iam::123456789012:oidc-provider/token.example.com";
        let mut provider = test_finding(
            Provider::Aws,
            IdentityKind::AwsOidcProvider,
            arn,
            "token.example.com",
            "identity_added",
        );
        provider.arn = Some(arn.to_string());
        let searches = queries(&provider);
        assert_eq!(searches.len(), 1);
        assert_eq!(searches[0].resource_name, arn);
        assert_eq!(searches[0].event_names, ["CreateOpenIDConnectProvider"]);

        let profile = test_finding(
            Provider::Aws,
            IdentityKind::AwsInstanceProfile,
            "AIPA1",
            "web",
            "privilege_added",
        );
        let searches = queries(&profile);
        assert_eq!(searches[0].resource_name, "web");
        assert!(
            searches[0]
                .event_names
                .contains(&"AddRoleToInstanceProfile")
        );
        assert!(!is_identity_center(&profile));

        let user = test_finding(
            Provider::Aws,
            IdentityKind::AwsIdentityCenterUser,
            "u-1",
            "ana",
            "identity_added",
        );
        assert!(is_identity_center(&user));
    }
}

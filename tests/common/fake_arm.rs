//! The Azure Resource Manager part of the fake: role assignments at
//! subscription, management group and root scope, and user-assigned managed
//! identities with their federated identity credentials.
//!
//! [`super::fake_graph::FakeGraph`] serves these paths from the same server,
//! so one token endpoint and one serving loop cover both APIs. Every request
//! needs a bearer token issued for `https://management.azure.com`; a Graph
//! token gets 401 `InvalidAuthenticationTokenAudience`. Lists need the
//! right `api-version`, are paged by an absolute `nextLink` that carries the
//! query and a `$skipToken`, and fail with ARM's `{"error": {"code",
//! "message"}}` body. Role assignment lists honor `$filter=atScope()`; every
//! management group is taken to sit above every subscription.

use serde_json::{Map, Value, json};

use super::fake_graph::{Incoming, Reply, TENANT_ID, decode_query_text, guid};

/// The audience of Azure Resource Manager tokens.
pub const ARM_AUDIENCE: &str = "https://management.azure.com";
/// The `api-version` the role assignment paths accept.
pub const ROLE_ASSIGNMENTS_API_VERSION: &str = "2022-04-01";
/// The `api-version` the managed identity paths accept.
pub const MANAGED_IDENTITY_API_VERSION: &str = "2023-01-31";

/// Role definition id of Owner.
pub const OWNER: &str = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";
/// Role definition id of Contributor.
pub const CONTRIBUTOR: &str = "b24988ac-6180-42a0-ab88-20f7382dd24c";
/// Role definition id of Reader, which idrift does not record.
pub const READER: &str = "acdd72a7-3385-48ef-bd42-f606fba81ae7";

/// The first group of the GUIDs of role assignments.
pub const RBAC_ASSIGNMENT_KIND: u32 = 0x0000_00a1;
/// The first group of the GUIDs of managed identity client ids.
pub const CLIENT_ID_KIND: u32 = 0x0000_00a2;

/// Returns true for a path that the ARM part of the fake serves.
pub fn serves(path: &str) -> bool {
    path.starts_with("/subscriptions/") || path.starts_with("/providers/")
}

/// Returns the scope of a subscription.
pub fn subscription_scope(subscription: &str) -> String {
    format!("/subscriptions/{subscription}")
}

/// Returns the scope of a management group.
pub fn management_group_scope(group: &str) -> String {
    format!("/providers/Microsoft.Management/managementGroups/{group}")
}

/// One Azure RBAC role assignment.
#[derive(Debug, Clone)]
pub struct FakeRbacAssignment {
    /// The assignment's name (a GUID).
    pub name: String,
    /// The scope, such as [`subscription_scope`].
    pub scope: String,
    /// The role definition id (a GUID).
    pub role: String,
    /// The principal's object id.
    pub principal_id: String,
    /// `User`, `ServicePrincipal` or `Group`.
    pub principal_type: String,
}

impl FakeRbacAssignment {
    /// Builds assignment `number` of a role to a principal at a scope.
    pub fn new(
        number: usize,
        scope: &str,
        role: &str,
        principal_id: &str,
        principal_type: &str,
    ) -> FakeRbacAssignment {
        FakeRbacAssignment {
            name: guid(RBAC_ASSIGNMENT_KIND, number),
            scope: scope.to_string(),
            role: role.to_string(),
            principal_id: principal_id.to_string(),
            principal_type: principal_type.to_string(),
        }
    }

    /// Returns the assignment's Azure Resource Manager id.
    pub fn id(&self) -> String {
        let scope = self.scope.trim_end_matches('/');
        format!(
            "{scope}/providers/Microsoft.Authorization/roleAssignments/{}",
            self.name
        )
    }

    fn to_json(&self) -> Value {
        json!({
            "id": self.id(),
            "name": self.name,
            "type": "Microsoft.Authorization/roleAssignments",
            "properties": {
                "roleDefinitionId": format!(
                    "/providers/Microsoft.Authorization/roleDefinitions/{}", self.role
                ),
                "principalId": self.principal_id,
                "principalType": self.principal_type,
                "scope": self.scope,
                "condition": null,
                "conditionVersion": null,
                "createdOn": "2024-03-04T05:06:07.0000000Z",
                "updatedOn": "2024-03-04T05:06:07.0000000Z",
                "createdBy": null,
                "updatedBy": null,
                "delegatedManagedIdentityResourceId": null,
                "description": null,
            },
        })
    }
}

/// A federated identity credential of a managed identity.
#[derive(Debug, Clone)]
pub struct FakeIdentityCredential {
    /// The credential's name.
    pub name: String,
    /// The token issuer it trusts.
    pub issuer: String,
    /// The subject it trusts.
    pub subject: String,
}

impl FakeIdentityCredential {
    /// Builds a credential that trusts a GitHub Actions environment of `repo`.
    pub fn github(name: &str, repo: &str) -> FakeIdentityCredential {
        FakeIdentityCredential {
            name: name.to_string(),
            issuer: "https://token.actions.githubusercontent.com".to_string(),
            subject: format!("repo:{repo}:environment:production"),
        }
    }
}

/// A user-assigned managed identity in a resource group of a subscription.
#[derive(Debug, Clone)]
pub struct FakeUserAssignedIdentity {
    /// The subscription.
    pub subscription: String,
    /// The resource name.
    pub name: String,
    /// The object id of its service principal.
    pub principal_id: String,
    /// The application (client) id.
    pub client_id: String,
    /// Federated identity credentials.
    pub credentials: Vec<FakeIdentityCredential>,
}

impl FakeUserAssignedIdentity {
    /// Builds identity `name` in `rg-fake` whose service principal is `principal_id`.
    pub fn new(
        number: usize,
        subscription: &str,
        name: &str,
        principal_id: &str,
    ) -> FakeUserAssignedIdentity {
        FakeUserAssignedIdentity {
            subscription: subscription.to_string(),
            name: name.to_string(),
            principal_id: principal_id.to_string(),
            client_id: guid(CLIENT_ID_KIND, number),
            credentials: Vec::new(),
        }
    }

    /// Returns the identity's Azure Resource Manager id, with the lowercase
    /// `resourcegroups` that ARM returns.
    pub fn id(&self) -> String {
        format!(
            "/subscriptions/{}/resourcegroups/rg-fake/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{}",
            self.subscription, self.name
        )
    }

    /// Returns the Azure Resource Manager id of one of its credentials.
    pub fn credential_id(&self, name: &str) -> String {
        format!("{}/federatedIdentityCredentials/{name}", self.id())
    }

    fn to_json(&self) -> Value {
        json!({
            "id": self.id(),
            "location": "westeurope",
            "name": self.name,
            "tags": {},
            "type": "Microsoft.ManagedIdentity/userAssignedIdentities",
            "properties": {
                "tenantId": TENANT_ID,
                "principalId": self.principal_id,
                "clientId": self.client_id,
            },
        })
    }

    fn credential_json(&self, credential: &FakeIdentityCredential) -> Value {
        json!({
            "id": self.credential_id(&credential.name),
            "name": credential.name,
            "type": "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials",
            "properties": {
                "issuer": credential.issuer,
                "subject": credential.subject,
                "audiences": ["api://AzureADTokenExchange"],
            },
        })
    }
}

/// A scripted misbehavior of the ARM paths. A path pattern ending in `*`
/// matches every path that starts with the text before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArmFault {
    /// Returns 429 `TooManyRequests` with `Retry-After` for the first `times` requests.
    Throttle {
        /// The path pattern.
        path: String,
        /// How many requests fail.
        times: usize,
        /// The `Retry-After` header, in seconds.
        retry_after_seconds: u64,
    },
    /// Returns 403 `AuthorizationFailed` for every request.
    Forbidden {
        /// The path pattern.
        path: String,
    },
}

/// What the ARM paths serve, and their faults.
#[derive(Debug, Clone)]
pub struct ArmData {
    /// Subscriptions that exist; others get 404 `SubscriptionNotFound`.
    pub subscriptions: Vec<String>,
    /// Role assignments at any scope.
    pub role_assignments: Vec<FakeRbacAssignment>,
    /// User-assigned managed identities.
    pub identities: Vec<FakeUserAssignedIdentity>,
    /// Records per page.
    pub page_size: usize,
    /// Faults with how many requests each has failed.
    pub faults: Vec<(ArmFault, usize)>,
}

impl Default for ArmData {
    fn default() -> ArmData {
        ArmData {
            subscriptions: Vec::new(),
            role_assignments: Vec::new(),
            identities: Vec::new(),
            page_size: 100,
            faults: Vec::new(),
        }
    }
}

/// Builds an ARM error reply, with the body `{"error": {"code", "message"}}`.
fn arm_error(status: u16, code: &str, message: &str) -> Reply {
    let body = json!({"error": {"code": code, "message": message}});
    let mut reply = Reply::json(status, &body);
    reply
        .headers
        .push(("x-ms-failure-cause", "gateway".to_string()));
    reply
}

/// Builds an ARM error reply, boxed for a `Result`.
fn boxed_error(status: u16, code: &str, message: &str) -> Box<Reply> {
    Box::new(arm_error(status, code, message))
}

fn pattern_matches(pattern: &str, path: &str) -> bool {
    let (path, pattern) = (path.to_ascii_lowercase(), pattern.to_ascii_lowercase());
    match pattern.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => pattern == path,
    }
}

impl ArmData {
    /// Responds to one ARM request. `audience` is that of the request's
    /// bearer token, when the fake issued it.
    pub(super) fn handle(
        &mut self,
        incoming: &Incoming,
        endpoint: &str,
        audience: Option<&str>,
    ) -> Reply {
        match audience {
            None => {
                return arm_error(
                    401,
                    "InvalidAuthenticationToken",
                    "The access token is invalid.",
                );
            }
            Some(audience) if audience != ARM_AUDIENCE => {
                return arm_error(
                    401,
                    "InvalidAuthenticationTokenAudience",
                    &format!(
                        "The access token has been obtained for wrong audience or resource '{audience}'."
                    ),
                );
            }
            Some(_) => {}
        }
        if let Some(reply) = self.injected_error(&incoming.path) {
            return reply;
        }
        match self.records(incoming) {
            Ok(records) => self.page(incoming, endpoint, records),
            Err(reply) => *reply,
        }
    }

    fn injected_error(&mut self, path: &str) -> Option<Reply> {
        for (fault, hits) in &mut self.faults {
            match fault {
                ArmFault::Throttle {
                    path: pattern,
                    times,
                    retry_after_seconds,
                } if pattern_matches(pattern, path) && *hits < *times => {
                    *hits += 1;
                    let mut reply = arm_error(
                        429,
                        "TooManyRequests",
                        "The request is being throttled as the limit has been reached for operation type - Read.",
                    );
                    reply
                        .headers
                        .push(("Retry-After", retry_after_seconds.to_string()));
                    return Some(reply);
                }
                ArmFault::Forbidden { path: pattern } if pattern_matches(pattern, path) => {
                    *hits += 1;
                    let scope = path
                        .split("/providers/Microsoft.Authorization")
                        .next()
                        .unwrap_or(path);
                    let message = format!(
                        "The client 'idrift-fake' with object id '{}' does not have authorization \
                         to perform action 'Microsoft.Authorization/roleAssignments/read' over \
                         scope '{scope}' or the scope is invalid. If access was recently granted, \
                         please refresh your credentials.",
                        guid(0x0000_00ff, 1)
                    );
                    return Some(arm_error(403, "AuthorizationFailed", &message));
                }
                _ => {}
            }
        }
        None
    }

    /// Returns the records of a list path, or the error reply.
    fn records(&self, incoming: &Incoming) -> Result<Vec<Value>, Box<Reply>> {
        let path = incoming.path.as_str();
        let lower = path.to_ascii_lowercase();
        let version = incoming.param("api-version");
        let expected_version = if lower.contains("/microsoft.authorization/") {
            ROLE_ASSIGNMENTS_API_VERSION
        } else {
            MANAGED_IDENTITY_API_VERSION
        };
        if version != Some(expected_version) {
            return Err(boxed_error(
                400,
                "InvalidApiVersionParameter",
                &format!(
                    "The api-version '{}' is invalid. The supported versions include '{expected_version}'.",
                    version.unwrap_or_default()
                ),
            ));
        }
        if let Some(rest) = lower.strip_prefix("/subscriptions/") {
            let subscription = rest.split('/').next().unwrap_or_default();
            if !self
                .subscriptions
                .iter()
                .any(|known| known.to_ascii_lowercase() == subscription)
            {
                return Err(boxed_error(
                    404,
                    "SubscriptionNotFound",
                    &format!("The subscription '{subscription}' could not be found."),
                ));
            }
        }

        if let Some(scope) = path.strip_suffix("/providers/Microsoft.Authorization/roleAssignments")
        {
            let at_scope = incoming.param("$filter") == Some("atScope()");
            let records = self
                .role_assignments
                .iter()
                .filter(|assignment| applies(&assignment.scope, scope, at_scope))
                .map(FakeRbacAssignment::to_json)
                .collect();
            return Ok(records);
        }
        if let Some(scope) =
            path.strip_suffix("/providers/Microsoft.ManagedIdentity/userAssignedIdentities")
        {
            let records = self
                .identities
                .iter()
                .filter(|identity| subscription_scope(&identity.subscription) == scope)
                .map(FakeUserAssignedIdentity::to_json)
                .collect();
            return Ok(records);
        }
        if let Some(identity_id) = path.strip_suffix("/federatedIdentityCredentials") {
            let identity = self
                .identities
                .iter()
                .find(|identity| identity.id().eq_ignore_ascii_case(identity_id));
            return match identity {
                Some(identity) => Ok(identity
                    .credentials
                    .iter()
                    .map(|credential| identity.credential_json(credential))
                    .collect()),
                None => Err(boxed_error(
                    404,
                    "ResourceNotFound",
                    &format!("The Resource '{identity_id}' was not found."),
                )),
            };
        }
        Err(boxed_error(
            404,
            "InvalidResourceType",
            &format!("The fake serves no resource type at {path}."),
        ))
    }

    /// Serves one page, starting at the request's `$skipToken`.
    fn page(&self, incoming: &Incoming, endpoint: &str, records: Vec<Value>) -> Reply {
        let start: usize = incoming
            .param("$skipToken")
            .and_then(|token| token.strip_prefix("fake-"))
            .and_then(|offset| offset.parse().ok())
            .unwrap_or(0);
        let end = (start + self.page_size).min(records.len());
        let value: Vec<Value> = records
            .get(start.min(end)..end)
            .unwrap_or_default()
            .to_vec();
        let next_link = (end < records.len()).then(|| {
            let mut pairs: Vec<String> = incoming
                .raw_pairs
                .iter()
                .filter(|pair| {
                    let name = pair.split_once('=').map_or(pair.as_str(), |(name, _)| name);
                    decode_query_text(name) != "$skipToken"
                })
                .cloned()
                .collect();
            pairs.push(format!("$skipToken=fake-{end}"));
            format!("{endpoint}{}?{}", incoming.path, pairs.join("&"))
        });

        let mut body = Map::new();
        let record_count = value.len();
        body.insert("value".to_string(), Value::Array(value));
        if let Some(link) = &next_link {
            body.insert("nextLink".to_string(), json!(link));
        }
        let mut reply = Reply::json(200, &Value::Object(body));
        reply.headers.push((
            "x-ms-ratelimit-remaining-subscription-reads",
            "11999".to_string(),
        ));
        reply.page = Some(start / self.page_size.max(1) + 1);
        reply.next_link = next_link;
        reply.record_count = Some(record_count);
        reply
    }
}

/// Returns true when an assignment at `assignment_scope` shows in a listing
/// of `listed_scope`: at or above it, and with no `atScope()` filter, below it too.
fn applies(assignment_scope: &str, listed_scope: &str, at_scope: bool) -> bool {
    let assignment = assignment_scope.trim_end_matches('/').to_ascii_lowercase();
    let listed = listed_scope.trim_end_matches('/').to_ascii_lowercase();
    let above = assignment.is_empty()
        || assignment == listed
        || assignment.starts_with("/providers/microsoft.management/managementgroups/")
            && listed.starts_with("/subscriptions/");
    let below = assignment.starts_with(&format!("{listed}/"));
    above || (!at_scope && below)
}

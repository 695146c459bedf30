//! A fake Microsoft Graph v1.0 and managed identity token endpoint on
//! 127.0.0.1, for testing the Entra ID collector without a tenant.
//!
//! One server plays three roles:
//!
//! - The App Service managed identity endpoint that azure_identity's
//!   `ManagedIdentityCredential` calls when `IDENTITY_ENDPOINT` and
//!   `IDENTITY_HEADER` are set ([`FakeGraph::identity_env`]): `GET
//!   /msi/token?api-version=2019-08-01&resource=...` with the header
//!   `X-IDENTITY-HEADER`, which returns a bearer token that expires after
//!   [`FakeGraph::set_token_lifetime`] seconds.
//! - The Entra token endpoint for the client credentials grant, `POST
//!   /{tenant}/oauth2/v2.0/token`, for the clients that
//!   [`FakeGraph::add_client`] registers with a secret or a certificate;
//!   [`super::fake_entra`] checks the requests. azure_identity sends these
//!   requests only over HTTPS, so tests put a [`super::tls_front::TlsFront`]
//!   in front of the fake.
//! - Graph v1.0 under `/v1.0`: users, service principals, applications and
//!   their federated identity credentials, directory role assignments, and
//!   groups (`/groups/{id}` as one object, `/groups/{id}/transitiveMembers`
//!   as a list). Every Graph request needs `Authorization: Bearer` with a
//!   token the fake issued. Lists are paged by `$top` (1 to 999, default
//!   100) and an absolute `@odata.nextLink` that carries the original query
//!   and a `$skiptoken`. `$select` is recorded but ignored, so every field
//!   is sent. Errors use Graph's `{"error": {"code", "message",
//!   "innerError"}}` body, and an unknown group or application id gets 404
//!   `Request_ResourceNotFound`.
//!
//! Applications and service principals also serve their owners, both as
//! `$expand=owners` on the lists (at most [`EXPANDED_OWNERS_LIMIT`] per
//! object and at most 100 objects per page, as Graph does) and as
//! `/{collection}/{id}/owners` lists. The same server plays Azure Resource
//! Manager for the paths [`super::fake_arm`] serves.
//!
//! Each test scripts the fake with a data set ([`Tenant`]), a page size and
//! a list of [`Fault`]s, and reads back every request it received.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde_json::{Map, Value, json};
use tiny_http::{Method, Request, Server, StatusCode};

use super::fake_arm::{ArmData, ArmFault};
use super::fake_entra::{FakeClient, TokenRequest, check_token_request};

/// The tenant id of the fake's directory.
pub const TENANT_ID: &str = "0c0ffee0-0000-4000-8000-000000000001";
/// The tenant that owns Microsoft's first-party applications.
pub const MICROSOFT_TENANT_ID: &str = "f8cdef31-a31e-4b4a-93e4-5f571e91255a";

/// Role template id of Global Administrator.
pub const GLOBAL_ADMINISTRATOR: &str = "62e90394-69f5-4237-9190-012177145e10";
/// Role template id of Privileged Role Administrator.
pub const PRIVILEGED_ROLE_ADMINISTRATOR: &str = "e8611ab8-c189-46e8-94e1-60213ab1f814";
/// Role template id of Application Administrator.
pub const APPLICATION_ADMINISTRATOR: &str = "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3";
/// Role template id of Directory Readers, a role that grants no write access.
pub const DIRECTORY_READERS: &str = "88d8e3e3-8f55-4a1e-953a-9b9898b8876b";

/// The value the token endpoint expects in `X-IDENTITY-HEADER`.
pub const IDENTITY_HEADER: &str = "idrift-fake-identity-header-secret";
/// The start of every access token the fake issues, for searching output for leaks.
pub const TOKEN_PREFIX: &str = "idrift-fake-access-token-";

/// Path of the managed identity token endpoint.
pub const TOKEN_PATH: &str = "/msi/token";
/// The end of the path of the Entra token endpoint, after `/{tenant}`.
pub const ENTRA_TOKEN_SUFFIX: &str = "/oauth2/v2.0/token";
/// The only `api-version` the token endpoint accepts, the one azure_identity 1.0 sends.
pub const TOKEN_API_VERSION: &str = "2019-08-01";
/// Path of the user list.
pub const USERS_PATH: &str = "/v1.0/users";
/// Path of the service principal list.
pub const SERVICE_PRINCIPALS_PATH: &str = "/v1.0/servicePrincipals";
/// Path of the application (app registration) list.
pub const APPLICATIONS_PATH: &str = "/v1.0/applications";
/// Path of the directory role assignment list.
pub const ROLE_ASSIGNMENTS_PATH: &str = "/v1.0/roleManagement/directory/roleAssignments";
/// Path of the organization, which names the tenant.
pub const ORGANIZATION_PATH: &str = "/v1.0/organization";
/// Path of the directory audit list, served from [`FakeGraph::add_directory_audit`].
pub const DIRECTORY_AUDITS_PATH: &str = "/v1.0/auditLogs/directoryAudits";
/// Path prefix of groups: `/v1.0/groups/{id}` is one group.
pub const GROUPS_PATH: &str = "/v1.0/groups";

/// The largest `$top` Graph accepts on directory objects.
pub const MAX_PAGE_SIZE: usize = 999;
/// The page size Graph uses when a request has no `$top`.
pub const DEFAULT_PAGE_SIZE: usize = 100;
/// The maximum number of objects Graph expands for one directory relationship.
pub const EXPANDED_OWNERS_LIMIT: usize = 20;
/// The maximum number of records in a page when the request expands a relationship.
pub const EXPANDED_PAGE_SIZE: usize = 100;

/// Creation time of every user and application built by the helpers.
pub const CREATED: &str = "2024-01-02T03:04:05Z";
/// Start of validity of every credential built by the helpers.
pub const CREDENTIAL_START: &str = "2024-02-03T04:05:06Z";
/// End of validity of every credential built by the helpers.
pub const CREDENTIAL_END: &str = "2026-02-03T04:05:06Z";

/// The subscription in every managed identity's resource id.
pub const SUBSCRIPTION_ID: &str = "5b5c0000-0000-4000-8000-000000000001";

/// Content type of Graph v1.0's JSON responses, as in the azure-cli test recordings.
const GRAPH_CONTENT_TYPE: &str = "application/json;odata.metadata=minimal;odata.streaming=true;\
                                  IEEE754Compatible=false;charset=utf-8";

/// Graph's message for a token whose lifetime has ended.
const TOKEN_EXPIRED_MESSAGE: &str = "Lifetime validation failed, the token is expired.";

/// Characters that RFC 3986 allows unencoded: letters, digits and `-._~`.
const URL_ENCODE_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The first group of the GUIDs that the helpers build, one per kind of object.
pub mod id_kind {
    /// Users.
    pub const USER: u32 = 0x0000_0001;
    /// Service principals, managed identities included.
    pub const SERVICE_PRINCIPAL: u32 = 0x0000_0002;
    /// Application objects (their object id).
    pub const APPLICATION: u32 = 0x0000_0003;
    /// Application (client) ids, shared by an application and its service principal.
    pub const APP_ID: u32 = 0x0000_0004;
    /// Password and key credentials (`keyId`).
    pub const KEY: u32 = 0x0000_0005;
    /// Federated identity credentials.
    pub const FEDERATED_CREDENTIAL: u32 = 0x0000_0006;
    /// Directory role assignments.
    pub const ROLE_ASSIGNMENT: u32 = 0x0000_0007;
    /// Groups.
    pub const GROUP: u32 = 0x0000_0008;
}

/// Returns the GUID of object `number` of a kind from [`id_kind`], such as
/// `00000001-0000-4000-8000-00000000000c` for user 12.
pub fn guid(kind: u32, number: usize) -> String {
    format!("{kind:08x}-0000-4000-8000-{number:012x}")
}

/// Changes to a record's JSON after it is built, for odd records: fields to
/// set to any value (new fields included) and fields to leave out.
#[derive(Debug, Clone, Default)]
pub struct JsonEdits {
    /// Fields to add, or to overwrite, with these values.
    pub set: Map<String, Value>,
    /// Fields to remove from the record.
    pub remove: Vec<String>,
}

impl JsonEdits {
    fn apply(&self, mut record: Value) -> Value {
        if let Value::Object(fields) = &mut record {
            for (name, value) in &self.set {
                fields.insert(name.clone(), value.clone());
            }
            for name in &self.remove {
                fields.remove(name);
            }
        }
        record
    }
}

/// Builder methods for the records that carry [`JsonEdits`].
pub trait Editable: Sized {
    /// Returns the record's edits.
    fn edits_mut(&mut self) -> &mut JsonEdits;

    /// Sets a field of the record's JSON to a value, adding it when the record has no such field.
    fn with_field(mut self, name: &str, value: Value) -> Self {
        self.edits_mut().set.insert(name.to_string(), value);
        self
    }

    /// Leaves a field out of the record's JSON.
    fn without_field(mut self, name: &str) -> Self {
        self.edits_mut().remove.push(name.to_string());
        self
    }
}

/// A password credential (client secret) of an application or service principal.
#[derive(Debug, Clone)]
pub struct FakePasswordCredential {
    /// The `keyId` GUID.
    pub key_id: String,
    /// The display name.
    pub display_name: Option<String>,
    /// The first three characters of the secret, as Graph shows them.
    pub hint: Option<String>,
    /// `startDateTime`.
    pub start: Option<String>,
    /// `endDateTime`.
    pub end: Option<String>,
    /// `secretText`: Graph sends null in lists, so a value here tests that
    /// idrift never stores it.
    pub secret_text: Option<String>,
    /// Edits to the credential's JSON.
    pub edits: JsonEdits,
}

impl FakePasswordCredential {
    /// Builds secret `number` named `secret-<number>`, valid from
    /// [`CREDENTIAL_START`] to [`CREDENTIAL_END`], with a null `secretText`.
    pub fn numbered(number: usize) -> FakePasswordCredential {
        FakePasswordCredential {
            key_id: guid(id_kind::KEY, number),
            display_name: Some(format!("secret-{number}")),
            hint: Some("Qx8".to_string()),
            start: Some(CREDENTIAL_START.to_string()),
            end: Some(CREDENTIAL_END.to_string()),
            secret_text: None,
            edits: JsonEdits::default(),
        }
    }

    fn to_json(&self) -> Value {
        let record = json!({
            "customKeyIdentifier": null,
            "displayName": self.display_name,
            "endDateTime": self.end,
            "hint": self.hint,
            "keyId": self.key_id,
            "secretText": self.secret_text,
            "startDateTime": self.start,
        });
        self.edits.apply(record)
    }
}

impl Editable for FakePasswordCredential {
    fn edits_mut(&mut self) -> &mut JsonEdits {
        &mut self.edits
    }
}

/// A key credential (certificate) of an application or service principal.
#[derive(Debug, Clone)]
pub struct FakeKeyCredential {
    /// The `keyId` GUID.
    pub key_id: String,
    /// The display name, usually the certificate's subject.
    pub display_name: Option<String>,
    /// `AsymmetricX509Cert` or `Symmetric`.
    pub key_type: String,
    /// `Verify` or `Sign`.
    pub usage: String,
    /// `startDateTime`.
    pub start: Option<String>,
    /// `endDateTime`.
    pub end: Option<String>,
    /// `key`, the certificate body: Graph sends null in lists, so a value
    /// here tests that idrift never stores it.
    pub key: Option<String>,
    /// Edits to the credential's JSON.
    pub edits: JsonEdits,
}

impl FakeKeyCredential {
    /// Builds certificate `number` (`AsymmetricX509Cert`, `Verify`), valid
    /// from [`CREDENTIAL_START`] to [`CREDENTIAL_END`], with a null `key`.
    pub fn numbered(number: usize) -> FakeKeyCredential {
        FakeKeyCredential {
            key_id: guid(id_kind::KEY, number),
            display_name: Some(format!("CN=idrift-fake-cert-{number}")),
            key_type: "AsymmetricX509Cert".to_string(),
            usage: "Verify".to_string(),
            start: Some(CREDENTIAL_START.to_string()),
            end: Some(CREDENTIAL_END.to_string()),
            key: None,
            edits: JsonEdits::default(),
        }
    }

    fn to_json(&self) -> Value {
        let record = json!({
            "customKeyIdentifier": self.key_id.replace('-', "").to_uppercase(),
            "displayName": self.display_name,
            "endDateTime": self.end,
            "key": self.key,
            "keyId": self.key_id,
            "startDateTime": self.start,
            "type": self.key_type,
            "usage": self.usage,
        });
        self.edits.apply(record)
    }
}

impl Editable for FakeKeyCredential {
    fn edits_mut(&mut self) -> &mut JsonEdits {
        &mut self.edits
    }
}

/// A federated identity credential of an application.
#[derive(Debug, Clone)]
pub struct FakeFederatedCredential {
    /// The credential's id (a GUID).
    pub id: String,
    /// The name, unique within the application.
    pub name: String,
    /// The issuer URL of the outside identity provider.
    pub issuer: String,
    /// The subject the outside token must carry.
    pub subject: String,
    /// The audiences the outside token must carry.
    pub audiences: Vec<String>,
    /// Edits to the credential's JSON.
    pub edits: JsonEdits,
}

impl FakeFederatedCredential {
    /// Builds credential `number`, which trusts GitHub Actions runs of the
    /// `main` branch of `example/repo-<number>`.
    pub fn github(number: usize) -> FakeFederatedCredential {
        FakeFederatedCredential {
            id: guid(id_kind::FEDERATED_CREDENTIAL, number),
            name: format!("github-main-{number}"),
            issuer: "https://token.actions.githubusercontent.com".to_string(),
            subject: format!("repo:example/repo-{number}:ref:refs/heads/main"),
            audiences: vec!["api://AzureADTokenExchange".to_string()],
            edits: JsonEdits::default(),
        }
    }

    fn to_json(&self) -> Value {
        let record = json!({
            "audiences": self.audiences,
            "description": null,
            "id": self.id,
            "issuer": self.issuer,
            "name": self.name,
            "subject": self.subject,
        });
        self.edits.apply(record)
    }
}

impl Editable for FakeFederatedCredential {
    fn edits_mut(&mut self) -> &mut JsonEdits {
        &mut self.edits
    }
}

/// A user, member or guest.
#[derive(Debug, Clone)]
pub struct FakeUser {
    /// The object id (a GUID).
    pub id: String,
    /// The sign-in name. Guests look like `eve_example.com#EXT#@<tenant>`.
    pub user_principal_name: String,
    /// The display name.
    pub display_name: Option<String>,
    /// `Member`, `Guest`, or null.
    pub user_type: Option<String>,
    /// Whether the user can sign in, or null when `None`.
    pub account_enabled: Option<bool>,
    /// `createdDateTime`.
    pub created: Option<String>,
    /// `creationType`, such as `Invitation` for invited guests.
    pub creation_type: Option<String>,
    /// `externalUserState`: `PendingAcceptance`, `Accepted` or null.
    pub external_user_state: Option<String>,
    /// Edits to the user's JSON.
    pub edits: JsonEdits,
}

impl FakeUser {
    /// Builds member `number`: `user-<number>@fake.onmicrosoft.com`, enabled, created at [`CREATED`].
    pub fn member(number: usize) -> FakeUser {
        FakeUser {
            id: guid(id_kind::USER, number),
            user_principal_name: format!("user-{number:02}@fake.onmicrosoft.com"),
            display_name: Some(format!("User {number:02}")),
            user_type: Some("Member".to_string()),
            account_enabled: Some(true),
            created: Some(CREATED.to_string()),
            creation_type: None,
            external_user_state: None,
            edits: JsonEdits::default(),
        }
    }

    /// Builds guest `number`, invited from `example.com` and accepted.
    pub fn guest(number: usize) -> FakeUser {
        FakeUser {
            id: guid(id_kind::USER, number),
            user_principal_name: format!("guest-{number:02}_example.com#EXT#@fake.onmicrosoft.com"),
            display_name: Some(format!("Guest {number:02}")),
            user_type: Some("Guest".to_string()),
            account_enabled: Some(true),
            created: Some(CREATED.to_string()),
            creation_type: Some("Invitation".to_string()),
            external_user_state: Some("Accepted".to_string()),
            edits: JsonEdits::default(),
        }
    }

    fn to_json(&self) -> Value {
        let record = json!({
            "accountEnabled": self.account_enabled,
            "businessPhones": [],
            "createdDateTime": self.created,
            "creationType": self.creation_type,
            "displayName": self.display_name,
            "externalUserState": self.external_user_state,
            "id": self.id,
            "mail": null,
            "userPrincipalName": self.user_principal_name,
            "userType": self.user_type,
        });
        self.edits.apply(record)
    }
}

impl Editable for FakeUser {
    fn edits_mut(&mut self) -> &mut JsonEdits {
        &mut self.edits
    }
}

/// A service principal, managed identities included.
#[derive(Debug, Clone)]
pub struct FakeServicePrincipal {
    /// The object id (a GUID).
    pub id: String,
    /// The application (client) id.
    pub app_id: String,
    /// The display name.
    pub display_name: Option<String>,
    /// `Application`, `ManagedIdentity`, `Legacy`, `SocialIdp`, or any other text.
    pub service_principal_type: Option<String>,
    /// The tenant that owns the application, or null for managed identities.
    pub app_owner_organization_id: Option<String>,
    /// `alternativeNames`: for managed identities `isExplicit=True|False` and the ARM resource id.
    pub alternative_names: Vec<String>,
    /// Whether the service principal can sign in, or null when `None`.
    pub account_enabled: Option<bool>,
    /// Client secrets.
    pub password_credentials: Vec<FakePasswordCredential>,
    /// Certificates.
    pub key_credentials: Vec<FakeKeyCredential>,
    /// Object ids of the owners, users or service principals of the tenant.
    pub owners: Vec<String>,
    /// Edits to the service principal's JSON.
    pub edits: JsonEdits,
}

impl FakeServicePrincipal {
    /// Builds service principal `number` of an application owned by the
    /// tenant, named `app-<number>`, with app id `guid(APP_ID, number)`.
    pub fn application(number: usize) -> FakeServicePrincipal {
        FakeServicePrincipal {
            id: guid(id_kind::SERVICE_PRINCIPAL, number),
            app_id: guid(id_kind::APP_ID, number),
            display_name: Some(format!("app-{number:02}")),
            service_principal_type: Some("Application".to_string()),
            app_owner_organization_id: Some(TENANT_ID.to_string()),
            alternative_names: Vec::new(),
            account_enabled: Some(true),
            password_credentials: Vec::new(),
            key_credentials: Vec::new(),
            owners: Vec::new(),
            edits: JsonEdits::default(),
        }
    }

    /// Builds service principal `number` of a Microsoft first-party application.
    pub fn first_party(number: usize, display_name: &str) -> FakeServicePrincipal {
        FakeServicePrincipal {
            display_name: Some(display_name.to_string()),
            app_owner_organization_id: Some(MICROSOFT_TENANT_ID.to_string()),
            ..FakeServicePrincipal::application(number)
        }
    }

    /// Builds the system-assigned managed identity of virtual machine `vm`,
    /// with an Azure-managed certificate as Graph shows it.
    pub fn system_assigned(number: usize, vm: &str) -> FakeServicePrincipal {
        let resource_id = format!(
            "/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/rg-fake/providers/\
             Microsoft.Compute/virtualMachines/{vm}"
        );
        FakeServicePrincipal::managed_identity(number, vm, "isExplicit=False", resource_id)
    }

    /// Builds the user-assigned managed identity `name`, with an
    /// Azure-managed certificate as Graph shows it.
    pub fn user_assigned(number: usize, name: &str) -> FakeServicePrincipal {
        let resource_id = user_assigned_resource_id(name);
        FakeServicePrincipal::managed_identity(number, name, "isExplicit=True", resource_id)
    }

    fn managed_identity(
        number: usize,
        name: &str,
        explicit: &str,
        resource_id: String,
    ) -> FakeServicePrincipal {
        FakeServicePrincipal {
            display_name: Some(name.to_string()),
            service_principal_type: Some("ManagedIdentity".to_string()),
            app_owner_organization_id: None,
            alternative_names: vec![explicit.to_string(), resource_id],
            key_credentials: vec![FakeKeyCredential {
                display_name: Some(format!("CN={}", guid(id_kind::APP_ID, number))),
                ..FakeKeyCredential::numbered(1000 + number)
            }],
            ..FakeServicePrincipal::application(number)
        }
    }

    fn to_json(&self) -> Value {
        let passwords: Vec<Value> = self
            .password_credentials
            .iter()
            .map(FakePasswordCredential::to_json)
            .collect();
        let keys: Vec<Value> = self
            .key_credentials
            .iter()
            .map(FakeKeyCredential::to_json)
            .collect();
        let record = json!({
            "accountEnabled": self.account_enabled,
            "alternativeNames": self.alternative_names,
            "appDisplayName": self.display_name,
            "appId": self.app_id,
            "appOwnerOrganizationId": self.app_owner_organization_id,
            "displayName": self.display_name,
            "id": self.id,
            "keyCredentials": keys,
            "passwordCredentials": passwords,
            "servicePrincipalNames": [self.app_id],
            "servicePrincipalType": self.service_principal_type,
            "tags": [],
        });
        self.edits.apply(record)
    }
}

impl Editable for FakeServicePrincipal {
    fn edits_mut(&mut self) -> &mut JsonEdits {
        &mut self.edits
    }
}

/// Returns the ARM resource id of the user-assigned managed identity `name`.
pub fn user_assigned_resource_id(name: &str) -> String {
    format!(
        "/subscriptions/{SUBSCRIPTION_ID}/resourcegroups/rg-fake/providers/\
         Microsoft.ManagedIdentity/userAssignedIdentities/{name}"
    )
}

/// An application object (app registration) with its federated identity credentials.
#[derive(Debug, Clone)]
pub struct FakeApplication {
    /// The object id (a GUID), used in `/applications/{id}/...` paths.
    pub id: String,
    /// The application (client) id.
    pub app_id: String,
    /// The display name.
    pub display_name: Option<String>,
    /// `createdDateTime`.
    pub created: Option<String>,
    /// Client secrets.
    pub password_credentials: Vec<FakePasswordCredential>,
    /// Certificates.
    pub key_credentials: Vec<FakeKeyCredential>,
    /// Federated identity credentials, served at
    /// [`federated_credentials_path`], never inside the application's record.
    pub federated_credentials: Vec<FakeFederatedCredential>,
    /// Object ids of the owners, users or service principals of the tenant.
    pub owners: Vec<String>,
    /// Edits to the application's JSON.
    pub edits: JsonEdits,
}

impl FakeApplication {
    /// Builds application `number`, named `app-<number>`, with the app id of
    /// [`FakeServicePrincipal::application`] with the same number.
    pub fn numbered(number: usize) -> FakeApplication {
        FakeApplication {
            id: guid(id_kind::APPLICATION, number),
            app_id: guid(id_kind::APP_ID, number),
            display_name: Some(format!("app-{number:02}")),
            created: Some(CREATED.to_string()),
            password_credentials: Vec::new(),
            key_credentials: Vec::new(),
            federated_credentials: Vec::new(),
            owners: Vec::new(),
            edits: JsonEdits::default(),
        }
    }

    fn to_json(&self) -> Value {
        let passwords: Vec<Value> = self
            .password_credentials
            .iter()
            .map(FakePasswordCredential::to_json)
            .collect();
        let keys: Vec<Value> = self
            .key_credentials
            .iter()
            .map(FakeKeyCredential::to_json)
            .collect();
        let record = json!({
            "appId": self.app_id,
            "createdDateTime": self.created,
            "displayName": self.display_name,
            "id": self.id,
            "identifierUris": [],
            "keyCredentials": keys,
            "passwordCredentials": passwords,
            "publisherDomain": "fake.onmicrosoft.com",
            "signInAudience": "AzureADMyOrg",
        });
        self.edits.apply(record)
    }
}

impl Editable for FakeApplication {
    fn edits_mut(&mut self) -> &mut JsonEdits {
        &mut self.edits
    }
}

/// Returns the path that lists the owners of an application or service
/// principal, from its collection path and object id.
pub fn owners_path(collection_path: &str, object_id: &str) -> String {
    format!("{collection_path}/{object_id}/owners")
}

/// Returns the path that lists an application's federated identity credentials.
pub fn federated_credentials_path(application_id: &str) -> String {
    format!("{APPLICATIONS_PATH}/{application_id}/federatedIdentityCredentials")
}

/// A directory role assignment at the tenant scope.
#[derive(Debug, Clone)]
pub struct FakeRoleAssignment {
    /// The assignment id.
    pub id: String,
    /// The object id of the user, service principal or group that is assigned the role.
    pub principal_id: String,
    /// The role's template id, such as [`GLOBAL_ADMINISTRATOR`].
    pub role_definition_id: String,
    /// The scope, where `/` is the whole tenant.
    pub directory_scope_id: String,
    /// Edits to the assignment's JSON.
    pub edits: JsonEdits,
}

impl FakeRoleAssignment {
    /// Builds assignment `number` of a role to a principal, at scope `/`.
    pub fn tenant_wide(number: usize, principal_id: &str, role: &str) -> FakeRoleAssignment {
        FakeRoleAssignment {
            id: guid(id_kind::ROLE_ASSIGNMENT, number),
            principal_id: principal_id.to_string(),
            role_definition_id: role.to_string(),
            directory_scope_id: "/".to_string(),
            edits: JsonEdits::default(),
        }
    }

    fn to_json(&self) -> Value {
        let record = json!({
            "directoryScopeId": self.directory_scope_id,
            "id": self.id,
            "principalId": self.principal_id,
            "principalOrganizationId": TENANT_ID,
            "resourceScope": self.directory_scope_id,
            "roleDefinitionId": self.role_definition_id,
        });
        self.edits.apply(record)
    }
}

impl Editable for FakeRoleAssignment {
    fn edits_mut(&mut self) -> &mut JsonEdits {
        &mut self.edits
    }
}

/// A security group, role-assignable unless changed.
#[derive(Debug, Clone)]
pub struct FakeGroup {
    /// The object id (a GUID).
    pub id: String,
    /// The display name.
    pub display_name: String,
    /// `isAssignableToRole`: only such groups can be given directory roles.
    pub is_assignable_to_role: bool,
    /// The object ids of the members, in listing order. Each is served with
    /// the `@odata.type` of the tenant's user or service principal with that
    /// id, and `#microsoft.graph.device` when there is none.
    pub members: Vec<String>,
    /// Edits to the group's JSON.
    pub edits: JsonEdits,
}

impl FakeGroup {
    /// Builds role-assignable group `number`, named `admins-<number>`, with members.
    pub fn role_assignable(number: usize, members: &[String]) -> FakeGroup {
        FakeGroup {
            id: guid(id_kind::GROUP, number),
            display_name: format!("admins-{number:02}"),
            is_assignable_to_role: true,
            members: members.to_vec(),
            edits: JsonEdits::default(),
        }
    }

    fn to_json(&self) -> Value {
        let record = json!({
            "displayName": self.display_name,
            "groupTypes": [],
            "id": self.id,
            "isAssignableToRole": self.is_assignable_to_role,
            "mailEnabled": false,
            "securityEnabled": true,
        });
        self.edits.apply(record)
    }
}

impl Editable for FakeGroup {
    fn edits_mut(&mut self) -> &mut JsonEdits {
        &mut self.edits
    }
}

/// Returns the path of one group.
pub fn group_path(group_id: &str) -> String {
    format!("{GROUPS_PATH}/{group_id}")
}

/// Returns the path that lists a group's direct and nested members.
pub fn group_members_path(group_id: &str) -> String {
    format!("{GROUPS_PATH}/{group_id}/transitiveMembers")
}

/// The fake's data set: one tenant's directory objects, in listing order.
#[derive(Debug, Clone, Default)]
pub struct Tenant {
    /// Users.
    pub users: Vec<FakeUser>,
    /// Service principals, managed identities included.
    pub service_principals: Vec<FakeServicePrincipal>,
    /// Applications, each with its federated identity credentials.
    pub applications: Vec<FakeApplication>,
    /// Directory role assignments.
    pub role_assignments: Vec<FakeRoleAssignment>,
    /// Groups, served only one by one and by their members.
    pub groups: Vec<FakeGroup>,
    /// What the Azure Resource Manager paths serve.
    pub arm: ArmData,
}

impl Tenant {
    /// Builds a tenant of `count` members and nothing else.
    pub fn with_members(count: usize) -> Tenant {
        Tenant {
            users: (1..=count).map(FakeUser::member).collect(),
            ..Tenant::default()
        }
    }

    /// Builds a small tenant with one of each common object:
    ///
    /// - members 1 and 2; member 1 is Global Administrator (assignment 1);
    /// - application 1 with secret 1, and its service principal 1;
    /// - the first-party service principal 2, "Microsoft Graph";
    /// - the system-assigned managed identity 3 of virtual machine `vm1`;
    /// - the user-assigned managed identity 4, `uami-deploy`.
    pub fn sample() -> Tenant {
        let mut application = FakeApplication::numbered(1);
        application
            .password_credentials
            .push(FakePasswordCredential::numbered(1));
        Tenant {
            users: vec![FakeUser::member(1), FakeUser::member(2)],
            service_principals: vec![
                FakeServicePrincipal::application(1),
                FakeServicePrincipal::first_party(2, "Microsoft Graph"),
                FakeServicePrincipal::system_assigned(3, "vm1"),
                FakeServicePrincipal::user_assigned(4, "uami-deploy"),
            ],
            applications: vec![application],
            role_assignments: vec![FakeRoleAssignment::tenant_wide(
                1,
                &guid(id_kind::USER, 1),
                GLOBAL_ADMINISTRATOR,
            )],
            groups: Vec::new(),
            arm: Default::default(),
        }
    }

    /// Returns the application with an object id, if there is one.
    pub fn application(&self, id: &str) -> Option<&FakeApplication> {
        self.applications.iter().find(|app| app.id == id)
    }

    /// Returns a directory object as an owner listing sends it: the
    /// `@odata.type` and Graph's default properties, without `userType`.
    fn owner_json(&self, id: &str) -> Option<Value> {
        if let Some(user) = self.users.iter().find(|user| user.id == id) {
            return Some(json!({
                "@odata.type": "#microsoft.graph.user",
                "businessPhones": [],
                "displayName": user.display_name,
                "id": user.id,
                "mail": null,
                "userPrincipalName": user.user_principal_name,
            }));
        }
        let principal = self.service_principals.iter().find(|sp| sp.id == id)?;
        Some(json!({
            "@odata.type": "#microsoft.graph.servicePrincipal",
            "appId": principal.app_id,
            "displayName": principal.display_name,
            "id": principal.id,
            "servicePrincipalType": principal.service_principal_type,
        }))
    }

    /// Returns the owner ids of the application or service principal with an object id.
    fn owner_ids(&self, object_id: &str) -> Option<&[String]> {
        let application = self.applications.iter().find(|app| app.id == object_id);
        if let Some(application) = application {
            return Some(&application.owners);
        }
        let principal = self
            .service_principals
            .iter()
            .find(|sp| sp.id == object_id)?;
        Some(&principal.owners)
    }

    /// Returns the owner records of an object, at most `limit` of them.
    fn owner_records(&self, object_id: &str, limit: usize) -> Option<Vec<Value>> {
        let ids = self.owner_ids(object_id)?;
        let records = ids.iter().filter_map(|id| self.owner_json(id));
        Some(records.take(limit).collect())
    }

    /// Adds each record's owners as `$expand=owners` does, at most
    /// [`EXPANDED_OWNERS_LIMIT`] of them and no link to the rest.
    fn expand_owners(&self, records: Vec<Value>) -> Vec<Value> {
        records
            .into_iter()
            .map(|mut record| {
                let id = record["id"].as_str().unwrap_or_default().to_string();
                let owners = self
                    .owner_records(&id, EXPANDED_OWNERS_LIMIT)
                    .unwrap_or_default();
                if let Value::Object(fields) = &mut record {
                    fields.insert("owners".to_string(), Value::Array(owners));
                }
                record
            })
            .collect()
    }

    /// Returns the group with an object id, if there is one.
    pub fn group(&self, id: &str) -> Option<&FakeGroup> {
        self.groups.iter().find(|group| group.id == id)
    }

    /// Returns the object at a single-object path (`/v1.0/groups/{id}`) as
    /// Graph would send it, `Some(None)` when no object has that id, and
    /// `None` for a path that is not a single object.
    fn object(&self, path: &str) -> Option<Option<Value>> {
        let id = path.strip_prefix(GROUPS_PATH)?.strip_prefix('/')?;
        if id.is_empty() || id.contains('/') {
            return None;
        }
        Some(self.group(id).map(FakeGroup::to_json))
    }

    /// Returns a group's members as `transitiveMembers` sends them: the
    /// `@odata.type` and the object id.
    fn group_members(&self, group: &FakeGroup) -> Vec<Value> {
        let type_of = |id: &String| {
            if self.users.iter().any(|user| &user.id == id) {
                "#microsoft.graph.user"
            } else if self.service_principals.iter().any(|sp| &sp.id == id) {
                "#microsoft.graph.servicePrincipal"
            } else {
                "#microsoft.graph.device"
            }
        };
        group
            .members
            .iter()
            .map(|id| json!({"@odata.type": type_of(id), "id": id}))
            .collect()
    }

    /// Returns the records of a collection path as Graph would send them,
    /// or `None` for a path the fake does not serve.
    fn records(&self, path: &str) -> Option<Vec<Value>> {
        let records = match path {
            USERS_PATH => self.users.iter().map(FakeUser::to_json).collect(),
            SERVICE_PRINCIPALS_PATH => self
                .service_principals
                .iter()
                .map(FakeServicePrincipal::to_json)
                .collect(),
            APPLICATIONS_PATH => self
                .applications
                .iter()
                .map(FakeApplication::to_json)
                .collect(),
            ROLE_ASSIGNMENTS_PATH => self
                .role_assignments
                .iter()
                .map(FakeRoleAssignment::to_json)
                .collect(),
            ORGANIZATION_PATH => vec![json!({
                "displayName": "Fake Tenant",
                "id": TENANT_ID,
                "verifiedDomains": [{"isDefault": true, "name": "fake.onmicrosoft.com"}],
            })],
            _ if path.ends_with("/owners") => {
                let object_id = path.strip_prefix("/v1.0/")?.split('/').nth(1)?;
                self.owner_records(object_id, usize::MAX)?
            }
            _ if path.starts_with(GROUPS_PATH) => {
                let group_id = path
                    .strip_prefix(GROUPS_PATH)?
                    .strip_prefix('/')?
                    .strip_suffix("/transitiveMembers")?;
                self.group_members(self.group(group_id)?)
            }
            _ => {
                let application_id = path
                    .strip_prefix(APPLICATIONS_PATH)?
                    .strip_prefix('/')?
                    .strip_suffix("/federatedIdentityCredentials")?;
                let application = self.application(application_id)?;
                application
                    .federated_credentials
                    .iter()
                    .map(FakeFederatedCredential::to_json)
                    .collect()
            }
        };
        Some(records)
    }
}

/// Returns the odd records that lenient parsing must keep, one per user,
/// service principal and application:
///
/// - user 1: `userType` null, `createdDateTime` null, no `accountEnabled`
///   field, and an unknown field `futureField`;
/// - user 2: a member created at `9999-12-31T23:59:59Z`;
/// - user 3: a record without `id`, which cannot be keyed;
/// - service principal 1: `servicePrincipalType` `SocialIdp`, no
///   `accountEnabled`, and a secret that ends at `2299-01-01T00:00:00Z`;
/// - service principal 2: `servicePrincipalType` `SomethingNew`;
/// - application 1: `createdDateTime` null and a certificate that ends at
///   `9999-12-31T23:59:59Z`.
pub fn odd_tenant() -> Tenant {
    let mut null_user = FakeUser::member(1)
        .without_field("accountEnabled")
        .with_field("futureField", json!({"nested": [1, 2, 3]}));
    null_user.user_type = None;
    null_user.created = None;
    let mut far_future_user = FakeUser::member(2);
    far_future_user.created = Some("9999-12-31T23:59:59Z".to_string());
    let no_id_user = FakeUser::member(3).without_field("id");

    let mut social = FakeServicePrincipal::application(1).without_field("accountEnabled");
    social.service_principal_type = Some("SocialIdp".to_string());
    let mut secret = FakePasswordCredential::numbered(1);
    secret.end = Some("2299-01-01T00:00:00Z".to_string());
    social.password_credentials.push(secret);
    let mut unknown_type = FakeServicePrincipal::application(2);
    unknown_type.service_principal_type = Some("SomethingNew".to_string());

    let mut application = FakeApplication::numbered(1);
    application.created = None;
    let mut certificate = FakeKeyCredential::numbered(2);
    certificate.end = Some("9999-12-31T23:59:59Z".to_string());
    application.key_credentials.push(certificate);

    Tenant {
        users: vec![null_user, far_future_user, no_id_user],
        service_principals: vec![social, unknown_type],
        applications: vec![application],
        role_assignments: Vec::new(),
        groups: Vec::new(),
        arm: Default::default(),
    }
}

/// A scripted misbehavior of the fake.
///
/// Faults are checked in the order they were added, after the bearer token
/// is checked, and the first error fault that applies to a request decides
/// its response. A `path` is matched exactly, and a path that ends in `*`
/// matches every path that starts with the text before it. Pages are
/// numbered from 1 by the `$skiptoken` of the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Returns 429 `TooManyRequests` with `Retry-After` for the first `times` requests of `path`.
    Throttle {
        /// The path, such as [`USERS_PATH`].
        path: String,
        /// How many requests fail.
        times: usize,
        /// The `Retry-After` header, in seconds.
        retry_after_seconds: u64,
    },
    /// Returns 503 `serviceNotAvailable` for the first `times` requests of `path`.
    Unavailable {
        /// The path.
        path: String,
        /// How many requests fail.
        times: usize,
        /// The `Retry-After` header in seconds, or none.
        retry_after_seconds: Option<u64>,
    },
    /// Returns 401 `InvalidAuthenticationToken` once, for page `page` of `path`.
    Unauthorized {
        /// The path.
        path: String,
        /// The page that fails, from 1.
        page: usize,
        /// When true, the token of the failed request stays rejected, so
        /// only a new token gets past it.
        revoke_token: bool,
    },
    /// Returns 403 `Authorization_RequestDenied` for every request of `path`.
    Forbidden {
        /// The path.
        path: String,
    },
    /// Serves page `page` of `path` with no records but with a nextLink to
    /// the records it would have held, so nothing is lost.
    EmptyPage {
        /// The path.
        path: String,
        /// The page that is empty, from 1.
        page: usize,
    },
    /// Gives every page of `path` after the first the URL it was requested
    /// with as its nextLink, so the listing never advances. The data set
    /// needs at least two pages.
    RepeatedNextLink {
        /// The path.
        path: String,
    },
    /// Starts every page of `path` after the first with the last record of
    /// the page before, so one record per page boundary comes twice.
    OverlappingPages {
        /// The path.
        path: String,
    },
    /// Points every nextLink of `path` at `endpoint` in place of the fake's
    /// own address, as a page that sends the client to another host would.
    ForeignNextLink {
        /// The path.
        path: String,
        /// The base URL put in the links, such as another fake's endpoint.
        endpoint: String,
    },
    /// Fails the first `times` token requests with 500.
    TokenUnavailable {
        /// How many token requests fail.
        times: usize,
    },
}

/// A fault and how many requests it has failed so far.
#[derive(Debug)]
struct ActiveFault {
    fault: Fault,
    hits: usize,
}

/// Returns true when a fault's path pattern matches a request path.
fn path_matches(pattern: &str, path: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => pattern == path,
    }
}

/// One request the fake received, with its response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// The HTTP method, such as `GET`.
    pub method: String,
    /// The absolute URL as requested: the fake's endpoint and the request
    /// target, query escapes kept as sent.
    pub url: String,
    /// The path, without the query.
    pub path: String,
    /// The query parameters in request order, percent-decoded.
    pub params: Vec<(String, String)>,
    /// Every header, by lowercase name. A repeated header keeps its last value.
    pub headers: BTreeMap<String, String>,
    /// The fields of a form body (`application/x-www-form-urlencoded`) in
    /// request order, decoded; empty for other bodies.
    pub form: Vec<(String, String)>,
    /// The HTTP status of the response.
    pub status: u16,
    /// The page number, from 1, of a Graph list request.
    pub page: Option<usize>,
    /// The `@odata.nextLink` that the response carried, if any.
    pub next_link: Option<String>,
    /// The number of records in the response's `value`, for list responses.
    pub record_count: Option<usize>,
    /// When the fake received the request.
    pub received: Instant,
}

impl RecordedRequest {
    /// Returns a decoded query parameter, such as `$top`, if the request sent it.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Returns a header by case-insensitive name, if the request sent it.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// Returns a decoded form field, if the body had it.
    pub fn form_field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Returns the bearer token of the `Authorization` header, if any.
    pub fn bearer_token(&self) -> Option<&str> {
        self.header("authorization")?.strip_prefix("Bearer ")
    }

    /// Returns true for a request to either token endpoint.
    pub fn is_token_request(&self) -> bool {
        self.path == TOKEN_PATH || self.is_entra_token_request()
    }

    /// Returns true for a request to the Entra token endpoint.
    pub fn is_entra_token_request(&self) -> bool {
        self.path.ends_with(ENTRA_TOKEN_SUFFIX)
    }
}

/// Everything the fake's handler reads and changes, behind one lock.
#[derive(Debug)]
struct State {
    /// `http://127.0.0.1:PORT`, the start of every nextLink.
    endpoint: String,
    tenant: Tenant,
    /// Records per page at most, below the request's `$top`.
    page_size: usize,
    /// Seconds from issue to the `expires_on` of each token.
    token_lifetime_seconds: u64,
    /// Tokens that Graph accepts.
    valid_tokens: BTreeSet<String>,
    /// Tokens that a [`Fault::Unauthorized`] revoked.
    revoked_tokens: BTreeSet<String>,
    /// Every token issued, in order.
    issued_tokens: Vec<String>,
    /// The resource (audience) each token was issued for.
    token_audiences: BTreeMap<String, String>,
    /// App registrations that the Entra token endpoint accepts.
    clients: Vec<FakeClient>,
    faults: Vec<ActiveFault>,
    requests: Vec<RecordedRequest>,
    /// Wait before each response.
    latency: std::time::Duration,
    /// Directory audit records, served newest first.
    audits: Vec<Value>,
}

/// A fake Graph and managed identity token endpoint on 127.0.0.1, stopped when dropped.
pub struct FakeGraph {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    state: Arc<Mutex<State>>,
    server: Arc<Server>,
    stopping: Arc<AtomicBool>,
    worker: Option<JoinHandle<()>>,
}

impl FakeGraph {
    /// Starts the fake on a free port with a data set, a page size of
    /// [`MAX_PAGE_SIZE`], tokens valid for an hour and no faults.
    pub fn start(tenant: Tenant) -> FakeGraph {
        let server = Server::http("127.0.0.1:0").expect("bind the fake Graph server");
        let server = Arc::new(server);
        let port = server
            .server_addr()
            .to_ip()
            .expect("the fake Graph server listens on TCP")
            .port();
        let endpoint = format!("http://127.0.0.1:{port}");
        let state = Arc::new(Mutex::new(State {
            endpoint: endpoint.clone(),
            tenant,
            page_size: MAX_PAGE_SIZE,
            token_lifetime_seconds: 3600,
            valid_tokens: BTreeSet::new(),
            revoked_tokens: BTreeSet::new(),
            issued_tokens: Vec::new(),
            token_audiences: BTreeMap::new(),
            clients: Vec::new(),
            faults: Vec::new(),
            requests: Vec::new(),
            latency: std::time::Duration::ZERO,
            audits: Vec::new(),
        }));
        let stopping = Arc::new(AtomicBool::new(false));

        let worker = {
            let server = Arc::clone(&server);
            let state = Arc::clone(&state);
            let stopping = Arc::clone(&stopping);
            std::thread::spawn(move || serve(&server, &state, &stopping))
        };
        FakeGraph {
            endpoint,
            state,
            server,
            stopping,
            worker: Some(worker),
        }
    }

    /// Adds a directory audit record, such as one from [`directory_audit`].
    pub fn add_directory_audit(&self, audit: Value) {
        self.state().audits.push(audit);
    }

    /// Returns the Graph base URL, `http://127.0.0.1:PORT/v1.0`.
    pub fn graph_url(&self) -> String {
        format!("{}/v1.0", self.endpoint)
    }

    /// Returns the token endpoint's URL, for `IDENTITY_ENDPOINT`.
    pub fn token_url(&self) -> String {
        format!("{}{TOKEN_PATH}", self.endpoint)
    }

    /// Returns the environment that points azure_identity's managed identity
    /// credential at the fake: `IDENTITY_ENDPOINT` and `IDENTITY_HEADER`.
    pub fn identity_env(&self) -> [(&'static str, String); 2] {
        [
            ("IDENTITY_ENDPOINT", self.token_url()),
            ("IDENTITY_HEADER", IDENTITY_HEADER.to_string()),
        ]
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits `latency` before each response. The fake serves one request
    /// at a time, so requests sent at once queue behind each other.
    pub fn set_latency(&self, latency: std::time::Duration) {
        self.state().latency = latency;
    }

    /// Replaces the data set, as if the tenant changed between two scans.
    pub fn set_tenant(&self, tenant: Tenant) {
        self.state().tenant = tenant;
    }

    /// Changes the data set in place.
    pub fn edit_tenant(&self, edit: impl FnOnce(&mut Tenant)) {
        edit(&mut self.state().tenant);
    }

    /// Sets the maximum number of records per page. A request's `$top` can
    /// make pages smaller still.
    pub fn set_page_size(&self, page_size: usize) {
        assert!(
            (1..=MAX_PAGE_SIZE).contains(&page_size),
            "a page holds 1 to {MAX_PAGE_SIZE} records"
        );
        self.state().page_size = page_size;
    }

    /// Sets the lifetime of tokens issued from now on. azure_identity 1.0
    /// fetches a new token whenever its cached one expires within 300 s.
    pub fn set_token_lifetime(&self, seconds: u64) {
        self.state().token_lifetime_seconds = seconds;
    }

    /// Registers an app that may get tokens from the Entra token endpoint.
    pub fn add_client(&self, client: FakeClient) {
        self.state().clients.push(client);
    }

    /// Adds a fault after those already added.
    pub fn add_fault(&self, fault: Fault) {
        self.state().faults.push(ActiveFault { fault, hits: 0 });
    }

    /// Removes every fault, so that the fake behaves like Graph again.
    pub fn clear_faults(&self) {
        self.state().faults.clear();
    }

    /// Returns every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state().requests.clone()
    }

    /// Returns the requests of one path, such as [`USERS_PATH`], in arrival order.
    pub fn requests_for(&self, path: &str) -> Vec<RecordedRequest> {
        let state = self.state();
        let matching = state.requests.iter().filter(|request| request.path == path);
        matching.cloned().collect()
    }

    /// Returns the requests to the token endpoint, in arrival order.
    pub fn token_requests(&self) -> Vec<RecordedRequest> {
        self.requests_for(TOKEN_PATH)
    }

    /// Returns the requests to the Entra token endpoint, in arrival order.
    pub fn entra_token_requests(&self) -> Vec<RecordedRequest> {
        let state = self.state();
        let matching = state.requests.iter().filter(|r| r.is_entra_token_request());
        matching.cloned().collect()
    }

    /// Returns every access token issued so far, in order.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.state().issued_tokens.clone()
    }

    /// Clears the requests recorded so far.
    pub fn clear_requests(&self) {
        self.state().requests.clear();
    }

    /// Returns the Azure Resource Manager base URL, for `arm_url`: the
    /// fake's endpoint, since one server serves both APIs.
    pub fn arm_url(&self) -> String {
        self.endpoint.clone()
    }

    /// Adds a fault to the Azure Resource Manager paths.
    pub fn add_arm_fault(&self, fault: ArmFault) {
        self.state().tenant.arm.faults.push((fault, 0));
    }

    /// Returns the requests to Azure Resource Manager paths, in arrival order.
    pub fn arm_requests(&self) -> Vec<RecordedRequest> {
        let state = self.state();
        let matching = state
            .requests
            .iter()
            .filter(|request| super::fake_arm::serves(&request.path));
        matching.cloned().collect()
    }
}

impl Drop for FakeGraph {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.server.unblock();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// Returns the time as Unix seconds.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
}

/// Handles requests one at a time until the fake is dropped.
fn serve(server: &Server, state: &Mutex<State>, stopping: &AtomicBool) {
    loop {
        let mut request = match server.recv() {
            Ok(request) => request,
            // `recv` fails both when unblocked and on a failed accept, but
            // only the first ends the loop.
            Err(_) if stopping.load(Ordering::SeqCst) => return,
            Err(error) => {
                eprintln!("fake Graph: accepting a connection failed: {error}");
                continue;
            }
        };

        let headers: BTreeMap<String, String> = request
            .headers()
            .iter()
            .map(|header| {
                let name = header.field.as_str().as_str().to_ascii_lowercase();
                (name, header.value.as_str().to_string())
            })
            .collect();
        let mut body = String::new();
        if let Err(error) = request.as_reader().read_to_string(&mut body) {
            eprintln!("fake Graph: reading the request body failed: {error}");
        }
        let incoming = Incoming::parse(request.method(), request.url(), headers, &body);
        let (reply, latency) = {
            let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
            (state.handle(incoming), state.latency)
        };

        std::thread::sleep(latency);
        write_reply(request, &reply);
    }
}

/// Sends a reply with `Connection: close`, so the client opens a new
/// connection for its next request.
///
/// tiny_http 0.12 serves each connection on a pool thread until the client
/// closes it, and a burst of connections can wait behind idle keep-alive
/// connections. `Response` drops a `Connection` header, so the reply is written raw.
fn write_reply(request: Request, reply: &Reply) {
    let reason = StatusCode(reply.status).default_reason_phrase();
    let mut head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
        reply.status,
        reply.content_type,
        reply.body.len()
    );
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");

    let mut writer = request.into_writer();
    let written = writer
        .write_all(head.as_bytes())
        .and_then(|()| writer.write_all(reply.body.as_bytes()))
        .and_then(|()| writer.flush());
    if let Err(error) = written {
        eprintln!("fake Graph: writing the response failed: {error}");
    }
}

/// A parsed request, before the fake responds to it.
#[derive(Debug, Clone)]
pub(super) struct Incoming {
    pub(super) method: String,
    /// The request target as sent: path and raw query.
    pub(super) target: String,
    pub(super) path: String,
    /// The raw query pairs, in order, undecoded.
    pub(super) raw_pairs: Vec<String>,
    pub(super) params: Vec<(String, String)>,
    pub(super) headers: BTreeMap<String, String>,
    /// The decoded fields of a form body.
    pub(super) form: Vec<(String, String)>,
}

impl Incoming {
    fn parse(
        method: &Method,
        target: &str,
        headers: BTreeMap<String, String>,
        body: &str,
    ) -> Incoming {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let raw_pairs: Vec<String> = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(str::to_string)
            .collect();
        let params = raw_pairs
            .iter()
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                (decode_query_text(name), decode_query_text(value))
            })
            .collect();
        let is_form = headers
            .get("content-type")
            .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"));
        let form = if is_form {
            decode_form(body)
        } else {
            Vec::new()
        };
        Incoming {
            method: method.as_str().to_string(),
            target: target.to_string(),
            path: path.to_string(),
            raw_pairs,
            params,
            headers,
            form,
        }
    }

    pub(super) fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// Returns the bearer token of the `Authorization` header, if any.
    pub(super) fn bearer_token(&self) -> Option<&str> {
        self.header("authorization")?.strip_prefix("Bearer ")
    }
}

/// Decodes the `name=value` pairs of a query or form body, in order.
fn decode_form(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_query_text(name), decode_query_text(value))
        })
        .collect()
}

/// Decodes one query name or value: `+` is a space, then percent escapes.
pub(super) fn decode_query_text(text: &str) -> String {
    let spaced = text.replace('+', " ");
    percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

/// An HTTP response.
#[derive(Debug)]
pub(super) struct Reply {
    pub(super) status: u16,
    pub(super) content_type: &'static str,
    /// Headers besides `Content-Type`, `Content-Length` and `Connection`.
    pub(super) headers: Vec<(&'static str, String)>,
    pub(super) body: String,
    /// The page number of a list request, recorded for the tests.
    pub(super) page: Option<usize>,
    /// The nextLink in the body, recorded for the tests.
    pub(super) next_link: Option<String>,
    /// How many records the body's `value` contains, recorded for the tests.
    pub(super) record_count: Option<usize>,
}

impl Reply {
    pub(super) fn json(status: u16, body: &Value) -> Reply {
        Reply {
            status,
            content_type: "application/json; charset=utf-8",
            headers: Vec::new(),
            body: body.to_string(),
            page: None,
            next_link: None,
            record_count: None,
        }
    }

    fn graph(status: u16, body: &Value, request_id: &str, client_request_id: &str) -> Reply {
        let mut reply = Reply::json(status, body);
        reply.content_type = GRAPH_CONTENT_TYPE;
        reply.headers.push(("OData-Version", "4.0".to_string()));
        reply.headers.push(("request-id", request_id.to_string()));
        reply
            .headers
            .push(("client-request-id", client_request_id.to_string()));
        reply
    }
}

/// A Graph error response.
#[derive(Debug, Clone, PartialEq, Eq)]
struct GraphError {
    status: u16,
    code: &'static str,
    message: String,
    retry_after_seconds: Option<u64>,
}

impl GraphError {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> GraphError {
        GraphError {
            status,
            code,
            message: message.into(),
            retry_after_seconds: None,
        }
    }

    fn throttled(retry_after_seconds: u64) -> GraphError {
        GraphError {
            retry_after_seconds: Some(retry_after_seconds),
            ..GraphError::new(
                429,
                "TooManyRequests",
                "Too many requests, retry after some time.",
            )
        }
    }

    fn unavailable(retry_after_seconds: Option<u64>) -> GraphError {
        GraphError {
            retry_after_seconds,
            ..GraphError::new(
                503,
                "serviceNotAvailable",
                "The service is temporarily unavailable.",
            )
        }
    }

    fn token_rejected(message: &str) -> GraphError {
        GraphError::new(401, "InvalidAuthenticationToken", message)
    }

    fn forbidden() -> GraphError {
        GraphError::new(
            403,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        )
    }

    /// Graph's 404 for an object id that names nothing, as for a deleted object.
    fn not_found(id: &str) -> GraphError {
        GraphError::new(
            404,
            "Request_ResourceNotFound",
            format!(
                "Resource '{id}' does not exist or one of its queried reference-property objects \
                 are not present."
            ),
        )
    }

    fn bad_request(message: impl Into<String>) -> GraphError {
        GraphError::new(400, "Request_BadRequest", message)
    }

    fn into_reply(self, request_id: &str, client_request_id: &str) -> Reply {
        let body = json!({
            "error": {
                "code": self.code,
                "message": self.message,
                "innerError": {
                    "date": "2024-06-01T12:00:00",
                    "request-id": request_id,
                    "client-request-id": client_request_id,
                },
            },
        });
        let mut reply = Reply::graph(self.status, &body, request_id, client_request_id);
        if let Some(seconds) = self.retry_after_seconds {
            reply.headers.push(("Retry-After", seconds.to_string()));
        }
        reply
    }
}

/// Where a list request starts: the page number and the offset of its first record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position {
    page: usize,
    offset: usize,
}

/// Returns the `$skiptoken` of a position. The token contains `/`, `+` and
/// `=`, which a URL must escape, so a client that rebuilds the nextLink
/// instead of using it verbatim is likely to break it.
fn skiptoken(position: Position) -> String {
    format!("fake/{}/{}+==", position.page, position.offset)
}

/// Returns the position that a token from [`skiptoken`] encodes.
fn parse_skiptoken(token: &str) -> Option<Position> {
    let (page, offset) = token
        .strip_prefix("fake/")?
        .strip_suffix("+==")?
        .split_once('/')?;
    Some(Position {
        page: page.parse().ok()?,
        offset: offset.parse().ok()?,
    })
}

/// Returns the entity set name that `@odata.context` names for a path.
fn entity_set(path: &str) -> String {
    match path.strip_prefix("/v1.0/") {
        Some(rest) if rest.starts_with("groups/") => {
            if rest.ends_with("/transitiveMembers") {
                "directoryObjects".to_string()
            } else {
                "groups".to_string()
            }
        }
        Some(rest) => match rest.strip_prefix("applications/") {
            Some(nested) => {
                let (application_id, relation) = nested.split_once('/').unwrap_or((nested, ""));
                format!("applications('{application_id}')/{relation}")
            }
            None => rest.to_string(),
        },
        None => path.to_string(),
    }
}

/// Keeps the records that a simple `$filter` matches: clauses `name eq
/// 'text'`, `name eq true|false|null`, joined by ` or `.
fn apply_filter(records: Vec<Value>, filter: &str) -> Result<Vec<Value>, GraphError> {
    let mut clauses = Vec::new();
    for clause in filter.split(" or ") {
        let Some((name, literal)) = clause.trim().split_once(" eq ") else {
            return Err(unsupported_filter(filter));
        };
        let expected = match literal.trim() {
            "true" => json!(true),
            "false" => json!(false),
            "null" => Value::Null,
            quoted => match quoted.strip_prefix('\'').and_then(|t| t.strip_suffix('\'')) {
                Some(text) => json!(text.replace("''", "'")),
                None => return Err(unsupported_filter(filter)),
            },
        };
        clauses.push((name.trim().to_string(), expected));
    }
    let matches = |record: &Value| {
        clauses
            .iter()
            .any(|(name, expected)| record.get(name).unwrap_or(&Value::Null) == expected)
    };
    Ok(records.into_iter().filter(matches).collect())
}

/// Builds a directory audit record as Graph returns it. `actor` is a user
/// principal name, or an application id when it has no `@`.
pub fn directory_audit(
    id: &str,
    activity: &str,
    time: &str,
    target_id: &str,
    actor: &str,
) -> Value {
    let initiated_by = if actor.contains('@') {
        json!({
            "app": null,
            "user": {
                "id": guid(id_kind::USER, 900),
                "displayName": null,
                "userPrincipalName": actor,
                "ipAddress": "198.51.100.23",
                "userType": null,
            },
        })
    } else {
        json!({
            "app": {
                "appId": actor,
                "displayName": "automation",
                "servicePrincipalId": guid(id_kind::SERVICE_PRINCIPAL, 900),
                "servicePrincipalName": null,
            },
            "user": null,
        })
    };
    json!({
        "id": id,
        "category": "ApplicationManagement",
        "correlationId": guid(id_kind::USER, 901),
        "result": "success",
        "resultReason": "",
        "activityDisplayName": activity,
        "activityDateTime": time,
        "loggedByService": "Core Directory",
        "operationType": "Add",
        "initiatedBy": initiated_by,
        "targetResources": [{
            "id": target_id,
            "displayName": null,
            "type": "ServicePrincipal",
            "modifiedProperties": [],
        }],
        "additionalDetails": [{"key": "User-Agent", "value": "Mozilla/5.0 (fake portal)"}],
    })
}

/// Keeps the audits that a directory audit `$filter` matches, newest
/// first. The clauses are joined by ` and `: `activityDateTime ge|le
/// <time>`, `targetResources/any(t:t/id eq '<id>')` and
/// `activityDisplayName eq '<name>'`. Times compare as RFC 3339 text in UTC.
fn filter_audits(audits: &[Value], filter: &str) -> Result<Vec<Value>, GraphError> {
    let mut kept: Vec<Value> = audits.to_vec();
    for clause in filter
        .split(" and ")
        .filter(|clause| !clause.trim().is_empty())
    {
        let clause = clause.trim();
        let field =
            |record: &Value, name: &str| record[name].as_str().unwrap_or_default().to_string();
        if let Some(time) = clause.strip_prefix("activityDateTime ge ") {
            kept.retain(|record| field(record, "activityDateTime").as_str() >= time);
        } else if let Some(time) = clause.strip_prefix("activityDateTime le ") {
            kept.retain(|record| field(record, "activityDateTime").as_str() <= time);
        } else if let Some(id) = clause
            .strip_prefix("targetResources/any(t:t/id eq '")
            .and_then(|rest| rest.strip_suffix("')"))
        {
            kept.retain(|record| {
                record["targetResources"]
                    .as_array()
                    .is_some_and(|targets| targets.iter().any(|target| target["id"] == id))
            });
        } else if let Some(name) = clause
            .strip_prefix("activityDisplayName eq '")
            .and_then(|rest| rest.strip_suffix('\''))
        {
            kept.retain(|record| field(record, "activityDisplayName") == name);
        } else {
            return Err(unsupported_filter(filter));
        }
    }
    kept.sort_by(|a, b| {
        b["activityDateTime"]
            .as_str()
            .cmp(&a["activityDateTime"].as_str())
    });
    Ok(kept)
}

fn unsupported_filter(filter: &str) -> GraphError {
    GraphError::new(
        400,
        "Request_UnsupportedQuery",
        format!("Unsupported query: the fake Graph cannot evaluate $filter={filter}"),
    )
}

impl State {
    /// Responds to one request and records it.
    fn handle(&mut self, incoming: Incoming) -> Reply {
        let received = Instant::now();
        let number = self.requests.len() + 1;
        let request_id = format!("00000000-0000-4000-8000-{number:012x}");
        let client_request_id = incoming
            .header("client-request-id")
            .unwrap_or(&request_id)
            .to_string();

        let reply = if incoming.path == TOKEN_PATH {
            self.token(&incoming)
        } else if incoming.path.ends_with(ENTRA_TOKEN_SUFFIX) {
            self.entra_token(&incoming)
        } else if super::fake_arm::serves(&incoming.path) {
            let token = incoming.bearer_token().unwrap_or_default();
            let audience = self.token_audiences.get(token).cloned();
            let endpoint = self.endpoint.clone();
            self.tenant
                .arm
                .handle(&incoming, &endpoint, audience.as_deref())
        } else if incoming.path.starts_with("/v1.0/") {
            match self.graph(&incoming, &request_id, &client_request_id) {
                Ok(reply) => reply,
                Err((error, page)) => {
                    let mut reply = error.into_reply(&request_id, &client_request_id);
                    reply.page = page;
                    reply
                }
            }
        } else {
            let error = GraphError::new(
                404,
                "NotFound",
                format!("The fake serves no path {}.", incoming.path),
            );
            error.into_reply(&request_id, &client_request_id)
        };

        self.requests.push(RecordedRequest {
            method: incoming.method,
            url: format!("{}{}", self.endpoint, incoming.target),
            path: incoming.path,
            params: incoming.params,
            headers: incoming.headers,
            form: incoming.form,
            status: reply.status,
            page: reply.page,
            next_link: reply.next_link.clone(),
            record_count: reply.record_count,
            received,
        });
        reply
    }

    /// Responds to a managed identity token request in App Service style.
    // NOTE: App Service's own error bodies are not modeled; failures carry a
    // short JSON message, which azure_identity 1.0 puts into its error text.
    fn token(&mut self, incoming: &Incoming) -> Reply {
        let failure = |status: u16, message: &str| {
            Reply::json(status, &json!({"statusCode": status, "message": message}))
        };
        if incoming.method != "GET" {
            return failure(405, "the token endpoint accepts only GET");
        }
        if incoming.header("x-identity-header") != Some(IDENTITY_HEADER) {
            return failure(401, "X-IDENTITY-HEADER is missing or wrong");
        }
        if incoming.param("api-version") != Some(TOKEN_API_VERSION) {
            return failure(400, "api-version must be 2019-08-01");
        }
        let Some(resource) = incoming.param("resource").filter(|text| !text.is_empty()) else {
            return failure(400, "resource is missing");
        };
        if self.take_token_fault() {
            return failure(500, "the fake token endpoint is failing on purpose");
        }

        let token = self.issue_token(resource);
        let expires_on = unix_now() + self.token_lifetime_seconds;
        let body = json!({
            "access_token": token,
            "expires_on": expires_on.to_string(),
            "resource": resource,
            "token_type": "Bearer",
        });
        Reply::json(200, &body)
    }

    /// Issues a token that Graph accepts from now on, for a resource such
    /// as `https://management.azure.com` (a scope's `/.default` is dropped).
    fn issue_token(&mut self, resource: &str) -> String {
        let token = format!("{TOKEN_PREFIX}{}", self.issued_tokens.len() + 1);
        self.issued_tokens.push(token.clone());
        self.valid_tokens.insert(token.clone());
        let audience = resource.trim_end_matches("/.default").trim_end_matches('/');
        self.token_audiences
            .insert(token.clone(), audience.to_string());
        token
    }

    /// Responds to a client credentials request in Entra's style. The
    /// assertion's audience is the URL the client sent the request to:
    /// `https` when a [`super::tls_front::TlsFront`] forwarded it (it sets
    /// `X-Forwarded-Proto`), the `Host` header and the path.
    fn entra_token(&mut self, incoming: &Incoming) -> Reply {
        let tenant = incoming
            .path
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or_default();
        let scheme = incoming.header("x-forwarded-proto").unwrap_or("http");
        let host = incoming.header("host").unwrap_or_default();
        let url = format!("{scheme}://{host}{}", incoming.path);
        let request = TokenRequest {
            method: &incoming.method,
            tenant,
            url: &url,
            content_type: incoming.header("content-type"),
            form: &incoming.form,
        };
        if let Err(error) = check_token_request(&request, TENANT_ID, &self.clients, unix_now()) {
            return Reply::json(error.status, &error.to_json());
        }
        if self.take_token_fault() {
            let body = json!({
                "error": "temporarily_unavailable",
                "error_description": "AADSTS90033: The fake token endpoint is failing on purpose.",
                "error_codes": [90033],
            });
            return Reply::json(500, &body);
        }

        let scope = incoming
            .form
            .iter()
            .find(|(key, _)| key == "scope")
            .map(|(_, value)| value.clone())
            .unwrap_or_default();
        let token = self.issue_token(&scope);
        let body = json!({
            "token_type": "Bearer",
            "expires_in": self.token_lifetime_seconds,
            "ext_expires_in": self.token_lifetime_seconds,
            "access_token": token,
        });
        Reply::json(200, &body)
    }

    /// Counts a hit on the first [`Fault::TokenUnavailable`] that still
    /// applies, and returns true when there was one.
    fn take_token_fault(&mut self) -> bool {
        for active in &mut self.faults {
            if let Fault::TokenUnavailable { times } = active.fault
                && active.hits < times
            {
                active.hits += 1;
                return true;
            }
        }
        false
    }

    /// Responds to a Graph request, or returns the error and the page it was for.
    fn graph(
        &mut self,
        incoming: &Incoming,
        request_id: &str,
        client_request_id: &str,
    ) -> Result<Reply, (GraphError, Option<usize>)> {
        let token = incoming
            .header("authorization")
            .and_then(|value| value.strip_prefix("Bearer "));
        let token = match token {
            None | Some("") => {
                let error = GraphError::token_rejected("Access token is empty.");
                return Err((error, None));
            }
            Some(token) if self.revoked_tokens.contains(token) => {
                let error = GraphError::token_rejected(TOKEN_EXPIRED_MESSAGE);
                return Err((error, None));
            }
            Some(token) if !self.valid_tokens.contains(token) => {
                let error = GraphError::token_rejected(
                    "Access token validation failure. Invalid audience.",
                );
                return Err((error, None));
            }
            Some(token) => token.to_string(),
        };
        if incoming.method != "GET" {
            let error = GraphError::bad_request("The fake Graph accepts only GET.");
            return Err((error, None));
        }

        let position = match incoming.param("$skiptoken") {
            None => Position { page: 1, offset: 0 },
            Some(text) => match parse_skiptoken(text) {
                Some(position) => position,
                None => {
                    let error = GraphError::bad_request(format!("Invalid $skiptoken '{text}'."));
                    return Err((error, None));
                }
            },
        };
        let page = Some(position.page);
        if let Some(error) = self.injected_error(&incoming.path, position.page, &token) {
            return Err((error, page));
        }

        if incoming.path == DIRECTORY_AUDITS_PATH {
            let filter = incoming.param("$filter").unwrap_or_default().to_string();
            let records = filter_audits(&self.audits, &filter).map_err(|error| (error, page))?;
            // The audit filter is evaluated here, not by the generic one.
            let mut unfiltered = incoming.clone();
            unfiltered.params.retain(|(name, _)| name != "$filter");
            return self
                .list_page(
                    &unfiltered,
                    records,
                    position,
                    request_id,
                    client_request_id,
                )
                .map_err(|error| (error, page));
        }
        if let Some(object) = self.tenant.object(&incoming.path) {
            return self
                .single_object(incoming, object, request_id, client_request_id)
                .map_err(|error| (error, page));
        }
        let Some(records) = self.tenant.records(&incoming.path) else {
            let mut segments = incoming.path.rsplit('/');
            let segment = segments.next().unwrap_or_default();
            let nested = [
                "federatedIdentityCredentials",
                "transitiveMembers",
                "owners",
            ];
            let error = if nested.contains(&segment) {
                // The segment before the relation is the unknown object's id.
                GraphError::not_found(segments.next().unwrap_or_default())
            } else {
                GraphError::bad_request(format!("Resource not found for the segment '{segment}'."))
            };
            return Err((error, page));
        };
        self.list_page(incoming, records, position, request_id, client_request_id)
            .map_err(|error| (error, page))
    }

    /// Serves one object, or Graph's 404 when there is none.
    fn single_object(
        &self,
        incoming: &Incoming,
        object: Option<Value>,
        request_id: &str,
        client_request_id: &str,
    ) -> Result<Reply, GraphError> {
        let id = incoming.path.rsplit('/').next().unwrap_or_default();
        let Some(Value::Object(fields)) = object else {
            return Err(GraphError::not_found(id));
        };
        let mut body = Map::new();
        let context = format!(
            "{}/v1.0/$metadata#{}/$entity",
            self.endpoint,
            entity_set(&incoming.path)
        );
        body.insert("@odata.context".to_string(), json!(context));
        body.extend(fields);
        let mut reply = Reply::graph(200, &Value::Object(body), request_id, client_request_id);
        reply.page = Some(1);
        Ok(reply)
    }

    /// Returns the error of the first error fault that applies to a request, and counts it.
    fn injected_error(&mut self, path: &str, page: usize, token: &str) -> Option<GraphError> {
        let mut revoke = false;
        let mut injected = None;
        for active in &mut self.faults {
            let error = match &active.fault {
                Fault::Throttle {
                    path: pattern,
                    times,
                    retry_after_seconds,
                } if path_matches(pattern, path) && active.hits < *times => {
                    GraphError::throttled(*retry_after_seconds)
                }
                Fault::Unavailable {
                    path: pattern,
                    times,
                    retry_after_seconds,
                } if path_matches(pattern, path) && active.hits < *times => {
                    GraphError::unavailable(*retry_after_seconds)
                }
                Fault::Unauthorized {
                    path: pattern,
                    page: target,
                    revoke_token,
                } if path_matches(pattern, path) && *target == page && active.hits == 0 => {
                    revoke = *revoke_token;
                    GraphError::token_rejected(TOKEN_EXPIRED_MESSAGE)
                }
                Fault::Forbidden { path: pattern } if path_matches(pattern, path) => {
                    GraphError::forbidden()
                }
                _ => continue,
            };
            active.hits += 1;
            injected = Some(error);
            break;
        }
        if revoke {
            self.valid_tokens.remove(token);
            self.revoked_tokens.insert(token.to_string());
        }
        injected
    }

    /// Returns true when any fault matches `applies`.
    fn has_fault(&self, applies: impl Fn(&Fault) -> bool) -> bool {
        self.faults.iter().any(|active| applies(&active.fault))
    }

    /// Serves one page of a list, as the request's `$top`, `$filter`, the
    /// fake's page size and the shaping faults decide.
    fn list_page(
        &self,
        incoming: &Incoming,
        records: Vec<Value>,
        position: Position,
        request_id: &str,
        client_request_id: &str,
    ) -> Result<Reply, GraphError> {
        let top = match incoming.param("$top") {
            None => DEFAULT_PAGE_SIZE,
            Some(text) => match text.parse::<usize>() {
                Ok(top) if (1..=MAX_PAGE_SIZE).contains(&top) => top,
                _ => {
                    return Err(GraphError::bad_request(format!(
                        "Invalid page size specified: '{text}'. Must be between 1 and \
                         {MAX_PAGE_SIZE} inclusive."
                    )));
                }
            },
        };
        for unsupported in ["$skip", "$orderby", "$search"] {
            if incoming.param(unsupported).is_some() {
                return Err(GraphError::new(
                    400,
                    "Request_UnsupportedQuery",
                    format!("The fake Graph does not support {unsupported}."),
                ));
            }
        }
        let counted = incoming.param("$count") == Some("true");
        if counted && incoming.header("consistencylevel") != Some("eventual") {
            return Err(GraphError::bad_request(
                "$count is not currently supported without ConsistencyLevel: eventual.",
            ));
        }
        let records = match incoming.param("$filter") {
            Some(filter) => apply_filter(records, filter)?,
            None => records,
        };
        let expanded = incoming.param("$expand");
        let records = match expanded {
            None => records,
            Some("owners")
                if [APPLICATIONS_PATH, SERVICE_PRINCIPALS_PATH]
                    .contains(&incoming.path.as_str()) =>
            {
                self.tenant.expand_owners(records)
            }
            Some(other) => {
                return Err(GraphError::bad_request(format!(
                    "Could not find a property named '{other}' that the fake can expand."
                )));
            }
        };

        let path = incoming.path.as_str();
        let mut size = top.min(self.page_size);
        if expanded.is_some() {
            size = size.min(EXPANDED_PAGE_SIZE);
        }
        let empty = self.has_fault(|fault| {
            matches!(fault, Fault::EmptyPage { path: pattern, page }
                if path_matches(pattern, path) && *page == position.page)
        });
        let overlapping = position.page > 1
            && self.has_fault(|fault| {
                matches!(fault, Fault::OverlappingPages { path: pattern }
                    if path_matches(pattern, path))
            });
        let repeated = position.page > 1
            && self.has_fault(|fault| {
                matches!(fault, Fault::RepeatedNextLink { path: pattern }
                    if path_matches(pattern, path))
            });

        let start = if overlapping {
            position.offset.saturating_sub(1)
        } else {
            position.offset
        };
        let end = if empty {
            position.offset
        } else {
            (position.offset + size).min(records.len())
        };
        let value: Vec<Value> = records
            .get(start.min(end)..end)
            .unwrap_or_default()
            .to_vec();
        let next = Position {
            page: position.page + 1,
            offset: end,
        };
        let next_link = if repeated {
            Some(format!("{}{}", self.endpoint, incoming.target))
        } else if empty || end < records.len() {
            Some(self.next_link(incoming, next))
        } else {
            None
        };
        let foreign = self.faults.iter().find_map(|active| match &active.fault {
            Fault::ForeignNextLink {
                path: pattern,
                endpoint,
            } if path_matches(pattern, path) => Some(endpoint.clone()),
            _ => None,
        });
        let next_link = match (next_link, foreign) {
            (Some(link), Some(endpoint)) => Some(link.replacen(&self.endpoint, &endpoint, 1)),
            (link, _) => link,
        };

        let mut body = Map::new();
        body.insert(
            "@odata.context".to_string(),
            json!(format!(
                "{}/v1.0/$metadata#{}",
                self.endpoint,
                entity_set(path)
            )),
        );
        if counted {
            body.insert("@odata.count".to_string(), json!(records.len()));
        }
        if let Some(link) = &next_link {
            body.insert("@odata.nextLink".to_string(), json!(link));
        }
        let record_count = value.len();
        body.insert("value".to_string(), Value::Array(value));

        let mut reply = Reply::graph(200, &Value::Object(body), request_id, client_request_id);
        reply.page = Some(position.page);
        reply.next_link = next_link;
        reply.record_count = Some(record_count);
        Ok(reply)
    }

    /// Builds the absolute nextLink to a position: the request's query as
    /// sent, without its `$skiptoken`, then the new `$skiptoken`.
    fn next_link(&self, incoming: &Incoming, position: Position) -> String {
        let mut pairs: Vec<String> = incoming
            .raw_pairs
            .iter()
            .filter(|pair| {
                let name = pair.split_once('=').map_or(pair.as_str(), |(name, _)| name);
                decode_query_text(name) != "$skiptoken"
            })
            .cloned()
            .collect();
        let token = skiptoken(position);
        let encoded = utf8_percent_encode(&token, URL_ENCODE_SET);
        pairs.push(format!("$skiptoken={encoded}"));
        format!("{}{}?{}", self.endpoint, incoming.path, pairs.join("&"))
    }
}

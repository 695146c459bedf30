//! Identity records and snapshots: the data every stage of the pipeline shares.
//!
//! Records hold only what identifies an account and its ways in: ids, names,
//! creation dates, credential ids and admin grants. Volatile fields (last use,
//! request ids, scan times) and secrets are never part of a record, so two
//! scans of an unchanged cloud serialize to the same bytes.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Version of the snapshot file format, stored in every file and checked on
/// load. Version 2 added identity kinds, collections and the `owners`
/// field that version 1 readers reject; version 1 files still load.
pub const SNAPSHOT_FORMAT_VERSION: u32 = 2;

/// A cloud provider that idrift collects from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Amazon Web Services IAM; one scope per 12-digit account.
    Aws,
    /// Microsoft Entra ID; one scope per tenant id (a GUID).
    Azure,
    /// Google Cloud IAM; one scope per project id.
    Gcp,
    /// Google Workspace or Cloud Identity; one scope per customer id
    /// (`C` and letters and digits, such as `C03az79cb`).
    Gworkspace,
}

impl Provider {
    /// Returns the lowercase name used in paths, reports and config.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Aws => "aws",
            Provider::Azure => "azure",
            Provider::Gcp => "gcp",
            Provider::Gworkspace => "gworkspace",
        }
    }

    /// Parses a folder or config name such as `aws`.
    pub fn parse(name: &str) -> Option<Provider> {
        match name {
            "aws" => Some(Provider::Aws),
            "azure" => Some(Provider::Azure),
            "gcp" => Some(Provider::Gcp),
            "gworkspace" => Some(Provider::Gworkspace),
            _ => None,
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Kind of identity a record describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityKind {
    /// An IAM user, keyed by its `UserId` (`AIDA...`).
    AwsUser,
    /// An IAM role, keyed by its `RoleId` (`AROA...`).
    AwsRole,
    /// An IAM instance profile, keyed by its `InstanceProfileId` (`AIPA...`),
    /// with the roles it hands to EC2 instances.
    AwsInstanceProfile,
    /// An IAM OpenID Connect identity provider, keyed by its ARN.
    AwsOidcProvider,
    /// An IAM SAML identity provider, keyed by its ARN.
    AwsSamlProvider,
    /// An IAM Identity Center user, keyed by its identity store `UserId`.
    AwsIdentityCenterUser,
    /// An IAM Identity Center permission-set assignment: one principal, one
    /// permission set, one account, keyed by
    /// `<account>/<permission set id>/<principal type>/<principal id>`.
    AwsPermissionSetAssignment,
    /// An Entra user, member or guest, keyed by its object id.
    AzureUser,
    /// An Entra service principal that is not a managed identity.
    AzureServicePrincipal,
    /// The service principal of a system- or user-assigned managed identity.
    AzureManagedIdentity,
    /// An Entra app registration (application object).
    AzureApplication,
    /// A service account of the project, keyed by its `uniqueId`.
    GcpServiceAccount,
    /// A principal that appears only in the project's IAM policy (a user,
    /// group, domain, outside service account, service agent or workload
    /// identity), keyed by its member string such as `user:ana@example.com`.
    GcpPrincipal,
    /// A workload identity pool provider: an outside token issuer (OIDC,
    /// AWS, SAML or X.509) whose identities can get Google credentials,
    /// keyed by its resource name.
    GcpWorkloadIdentityProvider,
    /// A Google Workspace or Cloud Identity user, keyed by its numeric `id`.
    GworkspaceUser,
}

impl IdentityKind {
    /// Every identity kind, AWS first, then Entra ID, then Google Cloud,
    /// then Google Workspace.
    pub const ALL: [IdentityKind; 15] = [
        IdentityKind::AwsUser,
        IdentityKind::AwsRole,
        IdentityKind::AwsInstanceProfile,
        IdentityKind::AwsOidcProvider,
        IdentityKind::AwsSamlProvider,
        IdentityKind::AwsIdentityCenterUser,
        IdentityKind::AwsPermissionSetAssignment,
        IdentityKind::AzureUser,
        IdentityKind::AzureServicePrincipal,
        IdentityKind::AzureManagedIdentity,
        IdentityKind::AzureApplication,
        IdentityKind::GcpServiceAccount,
        IdentityKind::GcpPrincipal,
        IdentityKind::GcpWorkloadIdentityProvider,
        IdentityKind::GworkspaceUser,
    ];

    /// Returns the snake_case name used in snapshots, reports and config.
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityKind::AwsUser => "aws_user",
            IdentityKind::AwsRole => "aws_role",
            IdentityKind::AwsInstanceProfile => "aws_instance_profile",
            IdentityKind::AwsOidcProvider => "aws_oidc_provider",
            IdentityKind::AwsSamlProvider => "aws_saml_provider",
            IdentityKind::AwsIdentityCenterUser => "aws_identity_center_user",
            IdentityKind::AwsPermissionSetAssignment => "aws_permission_set_assignment",
            IdentityKind::AzureUser => "azure_user",
            IdentityKind::AzureServicePrincipal => "azure_service_principal",
            IdentityKind::AzureManagedIdentity => "azure_managed_identity",
            IdentityKind::AzureApplication => "azure_application",
            IdentityKind::GcpServiceAccount => "gcp_service_account",
            IdentityKind::GcpPrincipal => "gcp_principal",
            IdentityKind::GcpWorkloadIdentityProvider => "gcp_workload_identity_provider",
            IdentityKind::GworkspaceUser => "gworkspace_user",
        }
    }

    /// Parses a snake_case name such as `aws_role`.
    pub fn parse(name: &str) -> Option<IdentityKind> {
        IdentityKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }

    /// Returns the provider whose identities are of this kind.
    pub fn provider(self) -> Provider {
        match self {
            IdentityKind::AwsUser
            | IdentityKind::AwsRole
            | IdentityKind::AwsInstanceProfile
            | IdentityKind::AwsOidcProvider
            | IdentityKind::AwsSamlProvider
            | IdentityKind::AwsIdentityCenterUser
            | IdentityKind::AwsPermissionSetAssignment => Provider::Aws,
            IdentityKind::AzureUser
            | IdentityKind::AzureServicePrincipal
            | IdentityKind::AzureManagedIdentity
            | IdentityKind::AzureApplication => Provider::Azure,
            IdentityKind::GcpServiceAccount
            | IdentityKind::GcpPrincipal
            | IdentityKind::GcpWorkloadIdentityProvider => Provider::Gcp,
            IdentityKind::GworkspaceUser => Provider::Gworkspace,
        }
    }

    /// Returns the name shown in reports.
    pub fn label(self) -> &'static str {
        match self {
            IdentityKind::AwsUser => "IAM user",
            IdentityKind::AwsRole => "IAM role",
            IdentityKind::AwsInstanceProfile => "instance profile",
            IdentityKind::AwsOidcProvider => "OIDC identity provider",
            IdentityKind::AwsSamlProvider => "SAML identity provider",
            IdentityKind::AwsIdentityCenterUser => "Identity Center user",
            IdentityKind::AwsPermissionSetAssignment => "permission-set assignment",
            IdentityKind::AzureUser => "Entra user",
            IdentityKind::AzureServicePrincipal => "service principal",
            IdentityKind::AzureManagedIdentity => "managed identity",
            IdentityKind::AzureApplication => "app registration",
            IdentityKind::GcpServiceAccount => "service account",
            IdentityKind::GcpPrincipal => "IAM policy member",
            IdentityKind::GcpWorkloadIdentityProvider => "workload identity provider",
            IdentityKind::GworkspaceUser => "Workspace user",
        }
    }

    /// Returns the collection whose listing produces identities of this kind.
    pub fn collection(self) -> CollectionName {
        match self {
            IdentityKind::AwsUser => CollectionName::Users,
            IdentityKind::AwsRole => CollectionName::Roles,
            IdentityKind::AwsInstanceProfile => CollectionName::InstanceProfiles,
            IdentityKind::AwsOidcProvider => CollectionName::OidcProviders,
            IdentityKind::AwsSamlProvider => CollectionName::SamlProviders,
            IdentityKind::AwsIdentityCenterUser => CollectionName::IdentityCenterUsers,
            IdentityKind::AwsPermissionSetAssignment => CollectionName::PermissionSetAssignments,
            IdentityKind::AzureUser => CollectionName::Users,
            IdentityKind::AzureServicePrincipal | IdentityKind::AzureManagedIdentity => {
                CollectionName::ServicePrincipals
            }
            IdentityKind::AzureApplication => CollectionName::Applications,
            IdentityKind::GcpServiceAccount => CollectionName::ServiceAccounts,
            IdentityKind::GcpPrincipal => CollectionName::IamPolicy,
            IdentityKind::GcpWorkloadIdentityProvider => CollectionName::WorkloadIdentityProviders,
            IdentityKind::GworkspaceUser => CollectionName::Users,
        }
    }

    /// Returns the collection whose listing produces this kind's admin grants.
    pub fn grant_collection(self) -> CollectionName {
        match self {
            IdentityKind::GcpServiceAccount | IdentityKind::GcpPrincipal => {
                CollectionName::IamPolicy
            }
            IdentityKind::GcpWorkloadIdentityProvider => CollectionName::WorkloadIdentityProviders,
            // `isAdmin` and `isDelegatedAdmin` come with each user record.
            IdentityKind::GworkspaceUser => CollectionName::Users,
            // A permission set's admin rights come with the assignment listing.
            IdentityKind::AwsPermissionSetAssignment => CollectionName::PermissionSetAssignments,
            _ => CollectionName::Privileges,
        }
    }

    /// Returns every identity kind whose records a collection lists.
    pub fn listed_by(collection: CollectionName) -> &'static [IdentityKind] {
        match collection {
            CollectionName::Users => &[
                IdentityKind::AwsUser,
                IdentityKind::AzureUser,
                IdentityKind::GworkspaceUser,
            ],
            CollectionName::Roles => &[IdentityKind::AwsRole],
            CollectionName::ServicePrincipals => &[
                IdentityKind::AzureServicePrincipal,
                IdentityKind::AzureManagedIdentity,
            ],
            CollectionName::Applications => &[IdentityKind::AzureApplication],
            CollectionName::ServiceAccounts => &[IdentityKind::GcpServiceAccount],
            CollectionName::IamPolicy => &[IdentityKind::GcpPrincipal],
            CollectionName::InstanceProfiles => &[IdentityKind::AwsInstanceProfile],
            CollectionName::OidcProviders => &[IdentityKind::AwsOidcProvider],
            CollectionName::SamlProviders => &[IdentityKind::AwsSamlProvider],
            CollectionName::IdentityCenterUsers => &[IdentityKind::AwsIdentityCenterUser],
            CollectionName::PermissionSetAssignments => &[IdentityKind::AwsPermissionSetAssignment],
            CollectionName::WorkloadIdentityProviders => {
                &[IdentityKind::GcpWorkloadIdentityProvider]
            }
            _ => &[],
        }
    }
}

/// A part of a scope's inventory that is listed, and can fail, on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CollectionName {
    /// IAM users with their paths, ARNs and groups.
    Users,
    /// IAM roles with their trust policies.
    Roles,
    /// Admin grants, from attached, inline and group policies.
    Privileges,
    /// Access key ids, status and creation dates.
    AccessKeys,
    /// Console passwords (login profiles): present or not, and when created.
    ConsolePasswords,
    /// Entra service principals and managed identities, with their secrets and certificates.
    ServicePrincipals,
    /// Entra app registrations, with their secrets and certificates.
    Applications,
    /// Federated identity credentials of app registrations.
    FederatedCredentials,
    /// A Google Cloud project's service accounts.
    ServiceAccounts,
    /// User-managed keys of a project's service accounts.
    ServiceAccountKeys,
    /// A Google Cloud project's IAM policy: the principals it names and
    /// their owner, editor and admin grants.
    IamPolicy,
    /// IAM instance profiles and the roles in them.
    InstanceProfiles,
    /// IAM OpenID Connect identity providers.
    OidcProviders,
    /// IAM SAML identity providers.
    SamlProviders,
    /// IAM Identity Center users (identity store); only when configured.
    IdentityCenterUsers,
    /// IAM Identity Center permission-set assignments; only when configured.
    PermissionSetAssignments,
    /// The IAM policy of each service account: who may impersonate it.
    ServiceAccountPolicies,
    /// A Google Cloud project's workload identity pool providers.
    WorkloadIdentityProviders,
    /// Owners of Entra app registrations and service principals.
    Owners,
    /// Azure RBAC role assignments of Owner, Contributor, User Access
    /// Administrator and Role Based Access Control Administrator at
    /// subscription and management group scope, listed through Azure
    /// Resource Manager.
    AzureRbac,
    /// User-assigned managed identities of the configured subscriptions,
    /// with their federated identity credentials, listed through Azure
    /// Resource Manager.
    UserAssignedIdentities,
}

impl CollectionName {
    /// Every AWS collection that every account scan lists, in report order.
    pub const AWS: [CollectionName; 8] = [
        CollectionName::Users,
        CollectionName::Roles,
        CollectionName::Privileges,
        CollectionName::AccessKeys,
        CollectionName::ConsolePasswords,
        CollectionName::InstanceProfiles,
        CollectionName::OidcProviders,
        CollectionName::SamlProviders,
    ];

    /// The AWS collections listed only for accounts with IAM Identity Center
    /// configured; other snapshots leave them out.
    pub const AWS_IDENTITY_CENTER: [CollectionName; 2] = [
        CollectionName::IdentityCenterUsers,
        CollectionName::PermissionSetAssignments,
    ];

    /// Every Entra ID collection, in report order.
    pub const AZURE: [CollectionName; 5] = [
        CollectionName::Users,
        CollectionName::ServicePrincipals,
        CollectionName::Applications,
        CollectionName::FederatedCredentials,
        CollectionName::Privileges,
    ];

    /// Every Google Cloud collection, in report order.
    pub const GCP: [CollectionName; 5] = [
        CollectionName::ServiceAccounts,
        CollectionName::ServiceAccountKeys,
        CollectionName::IamPolicy,
        CollectionName::ServiceAccountPolicies,
        CollectionName::WorkloadIdentityProviders,
    ];

    /// Every Google Workspace collection: users, with their admin status.
    pub const GWORKSPACE: [CollectionName; 1] = [CollectionName::Users];

    /// Returns the snake_case name used in snapshots and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            CollectionName::Users => "users",
            CollectionName::Roles => "roles",
            CollectionName::Privileges => "privileges",
            CollectionName::AccessKeys => "access_keys",
            CollectionName::ConsolePasswords => "console_passwords",
            CollectionName::ServicePrincipals => "service_principals",
            CollectionName::Applications => "applications",
            CollectionName::FederatedCredentials => "federated_credentials",
            CollectionName::ServiceAccounts => "service_accounts",
            CollectionName::ServiceAccountKeys => "service_account_keys",
            CollectionName::IamPolicy => "iam_policy",
            CollectionName::InstanceProfiles => "instance_profiles",
            CollectionName::OidcProviders => "oidc_providers",
            CollectionName::SamlProviders => "saml_providers",
            CollectionName::IdentityCenterUsers => "identity_center_users",
            CollectionName::PermissionSetAssignments => "permission_set_assignments",
            CollectionName::ServiceAccountPolicies => "service_account_policies",
            CollectionName::WorkloadIdentityProviders => "workload_identity_providers",
            CollectionName::Owners => "owners",
            CollectionName::AzureRbac => "azure_rbac",
            CollectionName::UserAssignedIdentities => "user_assigned_identities",
        }
    }
}

impl fmt::Display for CollectionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a collection was listed in full.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Completeness {
    /// Every page was read.
    Complete,
    /// The listing failed or was cut short. The snapshot keeps the records
    /// of the last complete listing when there was one (`kept_previous`).
    Incomplete {
        /// Reason the listing is not complete, with the provider's error.
        reason: String,
        /// True when the records come from the last complete snapshot.
        #[serde(default)]
        kept_previous: bool,
        /// Ids of the identities whose part of this collection was not
        /// listed, when the failure was limited to them. Empty means the
        /// whole collection is in doubt.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        unlisted: Vec<String>,
    },
    /// No source for this collection was available (an offline export
    /// without that file, say). Treated like `Incomplete`: never as empty.
    NotCollected {
        /// The missing source.
        reason: String,
        /// True when the records come from the last complete snapshot.
        #[serde(default)]
        kept_previous: bool,
    },
}

impl Completeness {
    /// Returns true when the collection was listed in full by this scan.
    pub fn is_complete(&self) -> bool {
        matches!(self, Completeness::Complete)
    }

    /// Returns the reason a collection is not complete, if it is not.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Completeness::Complete => None,
            Completeness::Incomplete { reason, .. } | Completeness::NotCollected { reason, .. } => {
                Some(reason)
            }
        }
    }

    /// Returns true when the records are the last complete listing: either
    /// listed in full now, or kept from the previous complete snapshot.
    pub fn holds_complete_records(&self) -> bool {
        match self {
            Completeness::Complete => true,
            Completeness::Incomplete { kept_previous, .. }
            | Completeness::NotCollected { kept_previous, .. } => *kept_previous,
        }
    }

    /// Returns the ids of the identities this listing missed, when it
    /// missed only some; empty otherwise.
    pub fn unlisted(&self) -> &[String] {
        match self {
            Completeness::Incomplete { unlisted, .. } => unlisted,
            _ => &[],
        }
    }

    /// Marks an incomplete collection as carrying the previous records.
    pub fn with_kept_previous(self) -> Completeness {
        match self {
            Completeness::Complete => Completeness::Complete,
            Completeness::Incomplete {
                reason, unlisted, ..
            } => Completeness::Incomplete {
                reason,
                kept_previous: true,
                unlisted,
            },
            Completeness::NotCollected { reason, .. } => Completeness::NotCollected {
                reason,
                kept_previous: true,
            },
        }
    }
}

/// A principal that an IAM role's trust policy allows to assume it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustPrincipal {
    /// `aws`, `service`, `federated` or `canonical_user`, from the policy's `Principal` key.
    pub kind: String,
    /// The principal as written: an account id, ARN, service name or `*`.
    pub value: String,
    /// True when the statement carries a `Condition` block.
    pub conditional: bool,
}

/// A credential that lets someone act as an identity; it contains no secret.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    /// `access_key` or `console_password`.
    pub kind: CredentialKind,
    /// The access key id, `console-password` for the one login profile, or
    /// the Entra `keyId` or federated credential id.
    pub id: String,
    /// `Active`, `Inactive` or `Expired` for access keys; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Creation time (or start of validity), RFC 3339 in UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// End of validity, RFC 3339 in UTC, where the provider sets one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// The display name or hint the provider shows for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Issuer, subject and audiences, for federated credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Kind of credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// An IAM access key (`AKIA...`).
    AccessKey,
    /// An IAM console password (login profile).
    ConsolePassword,
    /// An Entra password credential (client secret) on an app or service principal.
    ClientSecret,
    /// An Entra key credential (certificate) on an app or service principal.
    Certificate,
    /// An Entra federated identity credential on an app registration, or
    /// on a user-assigned managed identity.
    FederatedCredential,
    /// A user-managed key of a Google Cloud service account.
    ServiceAccountKey,
    /// A binding in a Google Cloud service account's own IAM policy that
    /// lets a member act as the account (token creator, service account
    /// user, key admin, workload identity user).
    ImpersonationGrant,
}

impl CredentialKind {
    /// Returns the collection whose listing produces credentials of this
    /// kind, or `None` when they come with the identity's own record.
    pub fn collection(self) -> Option<CollectionName> {
        match self {
            CredentialKind::AccessKey => Some(CollectionName::AccessKeys),
            CredentialKind::ConsolePassword => Some(CollectionName::ConsolePasswords),
            CredentialKind::FederatedCredential => Some(CollectionName::FederatedCredentials),
            CredentialKind::ServiceAccountKey => Some(CollectionName::ServiceAccountKeys),
            CredentialKind::ImpersonationGrant => Some(CollectionName::ServiceAccountPolicies),
            CredentialKind::ClientSecret | CredentialKind::Certificate => None,
        }
    }

    /// Returns the collection that lists credentials of this kind on an
    /// identity. Federated credentials of managed identities come from
    /// Azure Resource Manager, apart from those of app registrations.
    pub fn collection_on(self, identity: IdentityKind) -> CollectionName {
        match (self, identity) {
            (CredentialKind::FederatedCredential, IdentityKind::AzureManagedIdentity) => {
                CollectionName::UserAssignedIdentities
            }
            _ => self.collection().unwrap_or(identity.collection()),
        }
    }

    /// Returns the name shown in reports.
    pub fn label(self) -> &'static str {
        match self {
            CredentialKind::AccessKey => "access key",
            CredentialKind::ConsolePassword => "console password",
            CredentialKind::ClientSecret => "client secret",
            CredentialKind::Certificate => "certificate",
            CredentialKind::FederatedCredential => "federated credential",
            CredentialKind::ServiceAccountKey => "service account key",
            CredentialKind::ImpersonationGrant => "impersonation grant",
        }
    }
}

/// One way an identity has admin rights.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminGrant {
    /// `attached` (managed policy on the identity), `inline`, `group_attached` or `group_inline`.
    pub via: String,
    /// The managed policy ARN, or the inline policy's name.
    pub policy: String,
    /// The group that carries the policy or role, for grants through a
    /// group: an IAM group's name, or an Entra group's display name (its
    /// object id when the name is unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The Entra group's object id, for grants through a role-assignable group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// Reason it grants admin: `AdministratorAccess`, `*` on `*`, `iam:*`, or
    /// an Entra role's template id.
    pub reason: String,
    /// The Entra role assignment's id, used to remove it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignment_id: Option<String>,
}

/// The `via` of an Azure RBAC role assignment's grant.
pub const AZURE_RBAC_VIA: &str = "azure_rbac";

impl AdminGrant {
    /// Returns the collection whose listing produces this grant on an
    /// identity: Azure RBAC grants come from their own listing.
    pub fn collection_on(&self, identity: IdentityKind) -> CollectionName {
        if self.via == AZURE_RBAC_VIA {
            CollectionName::AzureRbac
        } else {
            identity.grant_collection()
        }
    }

    /// Returns what identifies the grant across scans: every field, with an
    /// Entra group's id standing for its display name, which can change.
    pub fn match_key(&self) -> AdminGrant {
        AdminGrant {
            group: self.group_id.clone().or_else(|| self.group.clone()),
            ..self.clone()
        }
    }
}

/// A principal that owns an Entra app registration or service principal,
/// and so can add credentials to it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Owner {
    /// The owner's object id.
    pub id: String,
    /// `user`, `service_principal`, or the short `@odata.type` of another
    /// directory object. Absent when the source does not give it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The user principal name or display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `Member` or `Guest`, for users found in the tenant's user listing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_type: Option<String>,
}

/// One identity: a user, role, service principal or service account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// The provider's immutable id (AWS `UserId` or `RoleId`).
    pub id: String,
    /// Kind of identity.
    pub kind: IdentityKind,
    /// The name, which can be reused by a new identity with a new id.
    pub name: String,
    /// The IAM path, such as `/` or `/aws-service-role/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// Creation time, RFC 3339 in UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Whether the identity can sign in; absent when the provider has no such state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Names of the groups the identity is in, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Principals the role's trust policy allows, sorted; roles only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trust: Vec<TrustPrincipal>,
    /// Credentials, sorted by kind and id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credentials: Vec<Credential>,
    /// Admin grants, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub admin_grants: Vec<AdminGrant>,
    /// Owners of an Entra app registration or service principal, sorted by id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owners: Vec<Owner>,
    /// Tags, by key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Provider-specific fields that matter to the judge, such as an Entra
    /// user's `user_type` or a service principal's `app_owner_organization_id`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

impl Identity {
    /// Creates a record with the required fields and everything else empty.
    pub fn new(id: impl Into<String>, kind: IdentityKind, name: impl Into<String>) -> Identity {
        Identity {
            id: id.into(),
            kind,
            name: name.into(),
            path: None,
            arn: None,
            created: None,
            enabled: None,
            groups: Vec::new(),
            trust: Vec::new(),
            credentials: Vec::new(),
            admin_grants: Vec::new(),
            owners: Vec::new(),
            tags: BTreeMap::new(),
            attributes: BTreeMap::new(),
        }
    }

    /// Sorts every list so that serialization is deterministic.
    pub fn normalize(&mut self) {
        self.groups.sort();
        self.groups.dedup();
        self.trust.sort();
        self.trust.dedup();
        self.credentials.sort();
        self.credentials.dedup();
        self.admin_grants.sort();
        self.admin_grants.dedup();
        self.owners.sort();
        self.owners.dedup_by(|a, b| a.id == b.id);
        // Deserializing grows each list to a capacity of at least four, which
        // for a million identities is most of the memory a snapshot takes.
        self.groups.shrink_to_fit();
        self.trust.shrink_to_fit();
        self.credentials.shrink_to_fit();
        self.admin_grants.shrink_to_fit();
    }

    /// Returns true when any admin grant is recorded.
    pub fn is_admin(&self) -> bool {
        !self.admin_grants.is_empty()
    }
}

/// The inventory of one scope (an AWS account) at one point in time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// File format version; see [`SNAPSHOT_FORMAT_VERSION`].
    pub format_version: u32,
    /// The provider.
    pub provider: Provider,
    /// The scope id: an AWS account id or an Entra tenant id.
    pub scope: String,
    /// Completeness of each collection.
    pub collections: BTreeMap<CollectionName, Completeness>,
    /// Identities, sorted by id.
    pub identities: Vec<Identity>,
}

impl Snapshot {
    /// Creates a snapshot and puts its records in canonical order.
    pub fn new(
        provider: Provider,
        scope: impl Into<String>,
        collections: BTreeMap<CollectionName, Completeness>,
        identities: Vec<Identity>,
    ) -> Snapshot {
        let mut snapshot = Snapshot {
            format_version: SNAPSHOT_FORMAT_VERSION,
            provider,
            scope: scope.into(),
            collections,
            identities,
        };
        snapshot.normalize();
        snapshot
    }

    /// Sorts identities by id (then kind) and every list inside them.
    pub fn normalize(&mut self) {
        for identity in &mut self.identities {
            identity.normalize();
        }
        self.identities
            .sort_by(|a, b| (&a.id, a.kind).cmp(&(&b.id, b.kind)));
        self.identities.shrink_to_fit();
    }

    /// Returns the completeness of a collection; a collection the snapshot
    /// does not mention counts as not collected.
    pub fn completeness(&self, name: CollectionName) -> Completeness {
        self.collections
            .get(&name)
            .cloned()
            .unwrap_or(Completeness::NotCollected {
                reason: format!("the snapshot has no {name} collection"),
                kept_previous: false,
            })
    }

    /// Returns true when every collection was listed in full by this scan.
    pub fn is_complete(&self) -> bool {
        self.collections.values().all(Completeness::is_complete)
    }
}

/// Attribute names the AWS collector records and the judge reads.
pub mod aws_attribute {
    /// Names of the roles in an instance profile, sorted, comma-separated.
    pub const ROLES: &str = "roles";
    /// An OIDC provider's client ids (audiences), sorted, comma-separated.
    pub const CLIENT_IDS: &str = "client_ids";
    /// An OIDC provider's server certificate thumbprints, sorted, comma-separated.
    pub const THUMBPRINTS: &str = "thumbprints";
    /// When a SAML provider's metadata document expires; it changes when
    /// the metadata (and so the trusted signing certificate) is replaced.
    pub const VALID_UNTIL: &str = "valid_until";
    /// The identity store that contains an Identity Center user.
    pub const IDENTITY_STORE_ID: &str = "identity_store_id";
    /// An Identity Center user's display name.
    pub const DISPLAY_NAME: &str = "display_name";
    /// An Identity Center user's primary email address.
    pub const EMAIL: &str = "email";
    /// The Identity Center instance of a permission-set assignment.
    pub const INSTANCE_ARN: &str = "instance_arn";
    /// The permission set's name.
    pub const PERMISSION_SET_NAME: &str = "permission_set_name";
    /// The account the permission set is assigned in.
    pub const TARGET_ACCOUNT: &str = "target_account";
    /// `USER` or `GROUP`.
    pub const PRINCIPAL_TYPE: &str = "principal_type";
    /// The identity store id of the assigned user or group.
    pub const PRINCIPAL_ID: &str = "principal_id";
    /// The assigned user's name, when the user listing names it.
    pub const PRINCIPAL_NAME: &str = "principal_name";
}

/// Attribute names the Entra collector records and the judge reads.
pub mod azure_attribute {
    /// `Member` or `Guest` (users).
    pub const USER_TYPE: &str = "user_type";
    /// The application (client) id of an app or service principal.
    pub const APP_ID: &str = "app_id";
    /// The tenant that owns a service principal's application.
    pub const APP_OWNER_ORGANIZATION_ID: &str = "app_owner_organization_id";
    /// `system_assigned` or `user_assigned` (managed identities).
    pub const MANAGED_IDENTITY: &str = "managed_identity";
    /// The Azure resource a managed identity belongs to.
    pub const RESOURCE_ID: &str = "resource_id";
}

/// Attribute names the Google Cloud collector records and the judge reads.
pub mod gcp_attribute {
    /// The member type of a policy principal: `user`, `group`, `domain`,
    /// `serviceAccount`, `principal`, `principalSet`, `allUsers` or
    /// `allAuthenticatedUsers`.
    pub const MEMBER_TYPE: &str = "member_type";
    /// Every role the IAM policy grants a principal, sorted, with a
    /// condition's title in brackets.
    pub const ROLES: &str = "roles";
    /// The service account's OAuth 2.0 client id.
    pub const OAUTH2_CLIENT_ID: &str = "oauth2_client_id";
    /// The project that owns a service account.
    pub const PROJECT_ID: &str = "project_id";
    /// The numeric uid of a deleted principal that a policy still names.
    pub const DELETED_UID: &str = "deleted_uid";
    /// The kind of token a workload identity provider accepts: `oidc`,
    /// `aws`, `saml` or `x509`.
    pub const PROVIDER_TYPE: &str = "provider_type";
    /// The issuer of the tokens a provider accepts: an OIDC issuer URI, an
    /// AWS account id, a SAML identity provider's entity id, or `x509`.
    pub const ISSUER: &str = "issuer";
    /// The SHA-256 of the keys a provider trusts in place of fetching them
    /// from the issuer: OIDC `jwksJson`, SAML metadata or an X.509 trust store.
    pub const TRUSTED_KEYS: &str = "trusted_keys_sha256";
    /// The CEL condition outside identities must meet to use a provider.
    pub const ATTRIBUTE_CONDITION: &str = "attribute_condition";
    /// A provider's attribute mapping, `google.subject=assertion.sub, ...`, sorted.
    pub const ATTRIBUTE_MAPPING: &str = "attribute_mapping";
    /// A provider's allowed audiences, comma-separated.
    pub const ALLOWED_AUDIENCES: &str = "allowed_audiences";
    /// `ACTIVE` or `DELETED` (deleted providers and pools can be restored for 30 days).
    pub const STATE: &str = "state";
    /// The state of the pool that contains a provider.
    pub const POOL_STATE: &str = "pool_state";
}

/// Attribute names and admin grant values the Google Workspace collector
/// records and the judge reads.
pub mod gworkspace_attribute {
    /// `true` for a user whose account is archived (an Archived User
    /// license); absent otherwise.
    pub const ARCHIVED: &str = "archived";
    /// The organizational unit, such as `/Engineering`.
    pub const ORG_UNIT_PATH: &str = "org_unit_path";
    /// The admin grant `via` of both Workspace admin statuses, which come
    /// with the user record rather than from a policy.
    pub const ADMIN_STATUS: &str = "admin_status";
    /// The admin grant `policy` of a super administrator (`isAdmin`).
    pub const SUPER_ADMIN: &str = "super_admin";
    /// The admin grant `policy` of a delegated administrator
    /// (`isDelegatedAdmin`): an admin role short of super admin.
    pub const DELEGATED_ADMIN: &str = "delegated_admin";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_kind_names_match_serde() {
        for kind in IdentityKind::ALL {
            let json = serde_json::to_string(&kind).expect("serialize");
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(IdentityKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(IdentityKind::parse("aws_group"), None);
    }
}

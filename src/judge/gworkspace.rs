//! Google Workspace knowledge for the judge: severities of new users and
//! admin grants, and the Admin SDK calls that contain them.
//!
//! A super administrator (`isAdmin`) controls the whole customer: every
//! user, every setting, every other admin. A delegated administrator
//! (`isDelegatedAdmin`) has an admin role short of that. Google
//! creates no users of its own in a customer, so no creation is expected
//! by built-in knowledge.
//!
//! Response commands are `curl` calls to the Admin SDK with a token from
//! `gcloud auth application-default print-access-token`, because `gcloud`
//! has no commands for Workspace users. The token needs the
//! `admin.directory.user` scope (read and write), which the scan's
//! read-only scope does not give.

use super::{Severity, Verdict, shell_quote};
use crate::diff::{Change, ChangeKind};
use crate::model::gworkspace_attribute as attribute;
use crate::model::{AdminGrant, Identity};

/// The Admin SDK base URL in response commands.
const ADMIN_API: &str = "https://admin.googleapis.com";

/// The shell words that authorize a response command.
const AUTHORIZATION: &str =
    "-H \"Authorization: Bearer $(gcloud auth application-default print-access-token)\"";

fn is_super_admin(grant: &AdminGrant) -> bool {
    grant.policy == attribute::SUPER_ADMIN
}

/// Judges one change of a Google Workspace customer.
pub(super) fn assess(change: &Change) -> Verdict {
    let identity = &change.identity;
    match &change.kind {
        ChangeKind::IdentityAdded => assess_creation(identity),
        ChangeKind::IdentityRecreated { .. } => assess_creation(identity).for_recreation(),
        ChangeKind::PrivilegeAdded { grant } if is_super_admin(grant) => Verdict::new(
            Severity::Critical,
            "an existing user became a super administrator, with control of every user and setting",
        ),
        ChangeKind::PrivilegeAdded { .. } => Verdict::new(
            Severity::High,
            "an existing user became a delegated administrator, with an admin role",
        ),
        ChangeKind::EnabledChanged { from } if *from == Some(false) => {
            Verdict::new(Severity::Low, "a suspended user was restored")
        }
        ChangeKind::AttributeChanged { key, from, .. }
            if key == attribute::ARCHIVED && from.is_some() =>
        {
            Verdict::new(Severity::Low, "an archived user was made active again")
        }
        _ => Verdict::new(
            Severity::Info,
            "removes access, renames, suspends or moves; no new way in",
        ),
    }
}

/// Severity of a new user, by its admin status.
pub(super) fn assess_creation(identity: &Identity) -> Verdict {
    if identity.admin_grants.iter().any(is_super_admin) {
        return Verdict::new(
            Severity::Critical,
            "new user who is a super administrator, with control of every user and setting",
        );
    }
    if identity.is_admin() {
        return Verdict::new(
            Severity::High,
            "new user who is a delegated administrator, with an admin role",
        );
    }
    if identity.enabled == Some(false) {
        return Verdict::new(
            Severity::Low,
            "new user who is suspended and cannot sign in yet",
        );
    }
    Verdict::new(
        Severity::Medium,
        "new user without admin rights, who can sign in to the customer's services",
    )
}

/// Returns the Admin SDK calls that contain a change, with real ids.
pub(super) fn response_commands(customer: &str, change: &Change) -> Vec<String> {
    let identity = &change.identity;
    match &change.kind {
        ChangeKind::IdentityAdded | ChangeKind::IdentityRecreated { .. } => {
            let mut commands = Vec::new();
            for grant in &identity.admin_grants {
                commands.push(revoke_grant(customer, identity, grant));
            }
            commands.push(suspend(identity));
            commands.push(sign_out(identity));
            commands
        }
        ChangeKind::PrivilegeAdded { grant } => {
            vec![revoke_grant(customer, identity, grant), sign_out(identity)]
        }
        ChangeKind::EnabledChanged { from } if *from == Some(false) => vec![suspend(identity)],
        _ => Vec::new(),
    }
}

/// Percent-encodes an id for a URL path or query.
fn encode(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn user_url(identity: &Identity, action: &str) -> String {
    let id = encode(&identity.id);
    shell_quote(&format!(
        "{ADMIN_API}/admin/directory/v1/users/{id}{action}"
    ))
}

/// Suspends the user: it can no longer sign in, and its data stays.
fn suspend(identity: &Identity) -> String {
    format!(
        "curl -X PATCH {AUTHORIZATION} -H 'Content-Type: application/json' -d '{{\"suspended\": true}}' {}",
        user_url(identity, "")
    )
}

/// Ends the user's web and device sessions, so a suspension takes hold at once.
fn sign_out(identity: &Identity) -> String {
    format!(
        "curl -X POST {AUTHORIZATION} {}",
        user_url(identity, "/signOut")
    )
}

/// Takes super admin away (`makeAdmin` with status false), or lists the
/// role assignments of a delegated admin, each of which is then deleted
/// with `DELETE .../roleassignments/<roleAssignmentId>`.
fn revoke_grant(customer: &str, identity: &Identity, grant: &AdminGrant) -> String {
    if is_super_admin(grant) {
        return format!(
            "curl -X POST {AUTHORIZATION} -H 'Content-Type: application/json' -d '{{\"status\": false}}' {}",
            user_url(identity, "/makeAdmin")
        );
    }
    let url = format!(
        "{ADMIN_API}/admin/directory/v1/customer/{}/roleassignments?userKey={}",
        encode(customer),
        encode(&identity.id)
    );
    format!("curl {AUTHORIZATION} {}", shell_quote(&url))
}

/// Returns the Admin SDK Reports call that finds who changed a user: the
/// admin console events that name the user's email.
pub(super) fn investigate_command(identity_name: &str) -> String {
    format!(
        "curl -G {AUTHORIZATION} {} --data-urlencode {}",
        shell_quote(&format!(
            "{ADMIN_API}/admin/reports/v1/activity/users/all/applications/admin"
        )),
        shell_quote(&format!("filters=USER_EMAIL=={identity_name}"))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::IdentityKind;

    fn user(grants: &[&str]) -> Identity {
        let mut identity = Identity::new(
            "104478963210987654321",
            IdentityKind::GworkspaceUser,
            "ana@example.com",
        );
        identity.enabled = Some(true);
        identity.admin_grants = grants
            .iter()
            .map(|policy| AdminGrant {
                via: attribute::ADMIN_STATUS.to_string(),
                policy: policy.to_string(),
                group: None,
                group_id: None,
                reason: policy.to_string(),
                assignment_id: None,
            })
            .collect();
        identity
    }

    #[test]
    fn creation_severity_follows_admin_status() {
        let cases = [
            (vec![attribute::SUPER_ADMIN], Severity::Critical),
            (
                vec![attribute::SUPER_ADMIN, attribute::DELEGATED_ADMIN],
                Severity::Critical,
            ),
            (vec![attribute::DELEGATED_ADMIN], Severity::High),
            (vec![], Severity::Medium),
        ];
        for (grants, severity) in cases {
            let verdict = assess_creation(&user(&grants));
            assert_eq!(verdict.severity, severity, "{grants:?}");
            assert!(verdict.expected_reason.is_none(), "{grants:?}");
        }
        let mut suspended = user(&[]);
        suspended.enabled = Some(false);
        assert_eq!(assess_creation(&suspended).severity, Severity::Low);
    }

    #[test]
    fn super_admin_grant_is_critical() {
        let identity = user(&[attribute::SUPER_ADMIN]);
        let change = Change {
            kind: ChangeKind::PrivilegeAdded {
                grant: identity.admin_grants[0].clone(),
            },
            identity,
        };
        assert_eq!(assess(&change).severity, Severity::Critical);
        let commands = response_commands("C03az79cb", &change);
        assert!(commands[0].contains("/makeAdmin"), "{commands:?}");
        assert!(commands[0].contains("\"status\": false"), "{commands:?}");
    }

    #[test]
    fn delegated_admin_grant_lists_role_assignments() {
        let identity = user(&[attribute::DELEGATED_ADMIN]);
        let change = Change {
            kind: ChangeKind::PrivilegeAdded {
                grant: identity.admin_grants[0].clone(),
            },
            identity,
        };
        assert_eq!(assess(&change).severity, Severity::High);
        let commands = response_commands("C03az79cb", &change);
        assert!(
            commands[0]
                .contains("/customer/C03az79cb/roleassignments?userKey=104478963210987654321"),
            "{commands:?}"
        );
    }

    #[test]
    fn new_user_is_suspended_and_signed_out() {
        let change = Change {
            kind: ChangeKind::IdentityAdded,
            identity: user(&[]),
        };
        let commands = response_commands("C03az79cb", &change);
        assert_eq!(commands.len(), 2, "{commands:?}");
        assert!(commands[0].starts_with("curl -X PATCH"), "{commands:?}");
        assert!(
            commands[0].ends_with("/admin/directory/v1/users/104478963210987654321"),
            "{commands:?}"
        );
        assert!(commands[1].contains("/signOut"), "{commands:?}");
    }
}

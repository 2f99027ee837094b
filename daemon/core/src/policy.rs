//! Who may do what: one policy that every domain operation consults, deny unless a rule allows.
//!
//! A [`Subject`] (a signed-in user, or a system job such as an operator command) asks to take an
//! [`Action`]; [`authorize`] answers from the subject's typed [`Role`]s and, for actions on one
//! object, from that object. Lemur's semantics are kept where Lemur has them (authority roles gate
//! issuance, the owner of a certificate may read its key, read-only users change nothing), and
//! made strict where Lemur is lax: a signed-in user with no role can neither write nor see the
//! rest of the inventory.

use crate::error::{Error, Result};
use crate::model::{CertificateRecord, PendingRecord, RoleRecord, UserRecord, Visibility};

/// A role as the policy understands it, parsed once from its stored name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// `admin`: everything.
    Admin,
    /// `operator`: reads the inventory, imports certificates, issues from the authorities it
    /// holds a role on.
    Operator,
    /// `read-only`: reads the inventory, changes nothing, even with other roles (it may still
    /// read the keys of certificates it owns, as in Lemur).
    ReadOnly,
    /// `auditor`: reads everything, audit logs included, changes nothing, never sees a key.
    Auditor,
    /// `global_cert_issuer`: imports certificates and issues without domain authorization (still
    /// only from authorities it holds a role on, as in Lemur).
    GlobalCertIssuer,
    /// Any other role: a team or owner role (certificates whose owner is its name are its
    /// holders'), or an authority's role (`<authority>_admin`, `<authority>_operator`, its owner),
    /// which lets its holders issue from that authority.
    Named(String),
}

impl Role {
    /// The built-in roles `lemur init` creates, with their descriptions.
    pub const BUILTIN: [(&'static str, &'static str); 5] = [
        ("admin", "Full administrative access"),
        (
            "operator",
            "Read the inventory, import certificates, issue from authorities held",
        ),
        ("read-only", "Read the inventory; change nothing"),
        (
            "auditor",
            "Read everything including audit logs; change nothing; never private keys",
        ),
        (
            "global_cert_issuer",
            "Issue for any domain without domain authorization",
        ),
    ];

    /// The role a stored name stands for.
    pub fn parse(name: &str) -> Self {
        match name {
            "admin" => Role::Admin,
            "operator" => Role::Operator,
            "read-only" => Role::ReadOnly,
            "auditor" => Role::Auditor,
            "global_cert_issuer" => Role::GlobalCertIssuer,
            other => Role::Named(other.to_owned()),
        }
    }
}

/// Who asks.
#[derive(Debug, Clone)]
pub enum Subject {
    /// A signed-in user.
    User(UserSubject),
    /// The daemon itself or an operator command run on the appliance by someone who can read
    /// its configuration and secrets (`lemur create_user` ...): trusted like an administrator,
    /// recorded in the audit log under its name, with no user.
    System(&'static str),
}

/// A signed-in user with their roles.
#[derive(Debug, Clone)]
pub struct UserSubject {
    /// The user.
    pub user: UserRecord,
    /// Their roles, as stored.
    pub roles: Vec<RoleRecord>,
    /// Their roles, as the policy reads them.
    pub parsed: Vec<Role>,
    /// Where the request came from.
    pub source: String,
    /// The login token the user presented: its id and expiry (for logging it out).
    pub token: Option<(String, i64)>,
}

impl Subject {
    /// A user subject with `roles`, asking from `source` with the token `token` (id, expiry).
    pub fn user(
        user: UserRecord,
        roles: Vec<RoleRecord>,
        source: String,
        token: Option<(String, i64)>,
    ) -> Self {
        let parsed = roles.iter().map(|role| Role::parse(&role.name)).collect();
        Subject::User(UserSubject {
            user,
            roles,
            parsed,
            source,
            token,
        })
    }

    /// The user id the audit log records, if a user asks.
    pub fn user_id(&self) -> Option<i64> {
        match self {
            Subject::User(user) => Some(user.user.id),
            Subject::System(_) => None,
        }
    }

    /// Where the request came from, for the audit log.
    pub fn source(&self) -> Option<&str> {
        match self {
            Subject::User(user) => Some(&user.source),
            Subject::System(job) => Some(job),
        }
    }

    fn has(&self, role: &Role) -> bool {
        match self {
            Subject::User(user) => user.parsed.contains(role),
            Subject::System(_) => false,
        }
    }

    fn is_admin(&self) -> bool {
        matches!(self, Subject::System(_)) || self.has(&Role::Admin)
    }

    /// Reads the whole inventory (not only what it owns).
    fn reads_everything(&self) -> bool {
        self.is_admin()
            || self.has(&Role::Operator)
            || self.has(&Role::ReadOnly)
            || self.has(&Role::Auditor)
    }

    /// May change the inventory at all: read-only and auditor roles win over any other.
    fn may_write(&self) -> bool {
        self.is_admin() || !(self.has(&Role::ReadOnly) || self.has(&Role::Auditor))
    }

    fn holds_any(&self, roles: &[RoleRecord]) -> bool {
        match self {
            Subject::User(user) => roles
                .iter()
                .any(|role| user.roles.iter().any(|held| held.id == role.id)),
            Subject::System(_) => false,
        }
    }

    /// Owns the certificate: its creator, the user whose email is its owner, or a holder of the
    /// role named after its owner (Lemur's CertificatePermission).
    fn owns(&self, certificate: &CertificateRecord) -> bool {
        self.owns_by(&certificate.owner, certificate.user_id)
    }

    /// Owns a certificate with this owner and creator, as [`Subject::owns`] says.
    fn owns_by(&self, owner: &str, creator: Option<i64>) -> bool {
        match self {
            Subject::User(user) => {
                creator == Some(user.user.id)
                    || user.user.email == owner
                    || user.roles.iter().any(|role| role.name == owner)
            }
            Subject::System(_) => false,
        }
    }

    /// Which certificates a list shows this subject.
    pub fn visibility(&self) -> Visibility {
        match self {
            Subject::User(user) if !self.reads_everything() => Visibility::Owned {
                owners: std::iter::once(user.user.email.clone())
                    .chain(user.roles.iter().map(|role| role.name.clone()))
                    .collect(),
                user_id: user.user.id,
            },
            _ => Visibility::All,
        }
    }
}

/// What a subject asks to do.
#[derive(Debug, Clone, Copy)]
pub enum Action<'a> {
    /// List certificates (the list is filtered by [`Subject::visibility`]).
    ListCertificates,
    /// Read one certificate.
    ReadCertificate(&'a CertificateRecord),
    /// Read a certificate's private key.
    ReadPrivateKey(&'a CertificateRecord),
    /// Revoke a certificate.
    RevokeCertificate(&'a CertificateRecord),
    /// Mark a certificate as replaced by a new one.
    ReplaceCertificate(&'a CertificateRecord),
    /// Import a certificate issued elsewhere.
    UploadCertificate,
    /// Read a pending certificate (lists are filtered by [`Subject::visibility`]).
    ReadPending {
        /// The pending certificate.
        pending: &'a PendingRecord,
        /// The roles of the authority it was ordered from.
        authority_roles: &'a [RoleRecord],
    },
    /// Change or cancel a pending certificate.
    ChangePending(&'a PendingRecord),
    /// Read the private key generated for a pending certificate.
    ReadPendingKey(&'a PendingRecord),
    /// Deliver the signed certificate of a pending one.
    DeliverPending {
        /// The pending certificate.
        pending: &'a PendingRecord,
        /// The roles of the authority it was ordered from.
        authority_roles: &'a [RoleRecord],
    },
    /// Issue from some authority: asked before the request names one is looked up.
    IssueFromAny,
    /// Issue from the authority holding these roles.
    Issue {
        /// The authority's roles.
        authority_roles: &'a [RoleRecord],
    },
    /// Issue for names outside `[names] allowed_domains` (Lemur's domain authorization).
    IssueForAnyDomain,
    /// Read authorities, or domains.
    ReadAuthorities,
    /// Record a domain (not sensitive).
    CreateDomain,
    /// Mark a domain sensitive or not, or issue for a sensitive one: admins and holders of the
    /// configured sensitive-domain roles.
    SensitiveDomains {
        /// Role names allowed besides admin (`[names] sensitive_domain_roles`).
        allowed_roles: &'a [String],
    },
    /// Create an authority.
    CreateAuthority,
    /// Read the installed plugins.
    ReadPlugins,
    /// Read the health checks' details (they name HSM and entropy internals).
    ReadHealthDetails,
    /// Manage users and roles.
    ManageUsers,
    /// Seal every stored secret again under a new key-encryption key.
    RotateKek,
    /// Install a new release of the appliance image (it restarts the appliance).
    UpgradeAppliance,
    /// Download a backup of the appliance (every key, sealed under the caller's passphrase).
    BackupAppliance,
    /// Replace everything on the appliance with a backup's (and read how the last one went).
    RestoreAppliance,
    /// Scan the whole inventory for certificates to announce as expiring (the scheduler's and
    /// `lemur notify expirations`' job: they tell every owner).
    ScanExpirations,
}

/// Allows the action or says why not (403).
pub fn authorize(subject: &Subject, action: Action<'_>) -> Result<()> {
    let (allowed, why) = match action {
        // Every subject is signed in by now; what a list shows is filtered by visibility.
        Action::ListCertificates | Action::ReadPlugins => (true, ""),
        Action::ReadCertificate(certificate) => (
            subject.reads_everything() || subject.owns(certificate),
            "only its owner, its creator and holders of an inventory-wide role may read this certificate",
        ),
        // Reading a key changes nothing, so a read-only owner may (as in Lemur); an auditor never.
        Action::ReadPrivateKey(certificate) => (
            subject.is_admin() || (subject.owns(certificate) && !subject.has(&Role::Auditor)),
            "only the certificate's owner, its creator or an administrator may read its private key",
        ),
        Action::RevokeCertificate(certificate) => (
            subject.is_admin() || (subject.owns(certificate) && subject.may_write()),
            "only the certificate's owner, its creator or an administrator may revoke it",
        ),
        Action::ReplaceCertificate(certificate) => (
            subject.is_admin() || (subject.owns(certificate) && subject.may_write()),
            "only the certificate's owner, its creator or an administrator may replace it",
        ),
        // Whoever runs the authority's CA reads the orders it is to sign.
        Action::ReadPending {
            pending,
            authority_roles,
        } => (
            subject.reads_everything()
                || subject.owns_by(&pending.owner, pending.user_id)
                || subject.holds_any(authority_roles),
            "only its owner, its creator, holders of a role on its authority and of an inventory-wide role may read this pending certificate",
        ),
        Action::ChangePending(pending) => (
            subject.is_admin()
                || (subject.owns_by(&pending.owner, pending.user_id) && subject.may_write()),
            "only the pending certificate's owner, its creator or an administrator may change or cancel it",
        ),
        Action::ReadPendingKey(pending) => (
            subject.is_admin()
                || (subject.owns_by(&pending.owner, pending.user_id)
                    && !subject.has(&Role::Auditor)),
            "only the pending certificate's owner, its creator or an administrator may read its private key",
        ),
        // Whoever runs the offline CA delivers: its authority's roles, besides the owner.
        Action::DeliverPending {
            pending,
            authority_roles,
        } => (
            subject.is_admin()
                || (subject.may_write()
                    && (subject.owns_by(&pending.owner, pending.user_id)
                        || subject.holds_any(authority_roles))),
            "only the pending certificate's owner, a holder of a role on its authority or an administrator may deliver it",
        ),
        Action::UploadCertificate => (
            subject.is_admin()
                || (subject.may_write()
                    && (subject.has(&Role::Operator) || subject.has(&Role::GlobalCertIssuer))),
            "importing certificates needs the operator, global_cert_issuer or admin role",
        ),
        Action::IssueFromAny => (
            subject.is_admin()
                || (subject.may_write()
                    && matches!(subject, Subject::User(user) if !user.roles.is_empty())),
            "issuing needs a role on an authority",
        ),
        Action::Issue { authority_roles } => (
            subject.is_admin() || (subject.may_write() && subject.holds_any(authority_roles)),
            "you hold no role on this authority",
        ),
        Action::ReadAuthorities => (
            subject.is_admin() || matches!(subject, Subject::User(user) if !user.roles.is_empty()),
            "reading authorities needs a role",
        ),
        Action::IssueForAnyDomain => (
            subject.is_admin() || subject.has(&Role::GlobalCertIssuer),
            "only administrators and global_cert_issuer skip domain authorization",
        ),
        Action::CreateDomain => (
            subject.is_admin()
                || (subject.may_write()
                    && (subject.has(&Role::Operator) || subject.has(&Role::GlobalCertIssuer))),
            "recording domains needs the operator, global_cert_issuer or admin role",
        ),
        Action::SensitiveDomains { allowed_roles } => (
            subject.is_admin()
                || (subject.may_write()
                    && matches!(subject, Subject::User(user)
                        if user.roles.iter().any(|role| allowed_roles.contains(&role.name)))),
            "sensitive domains are for administrators and the sensitive-domain roles",
        ),
        Action::CreateAuthority
        | Action::ManageUsers
        | Action::ScanExpirations
        | Action::UpgradeAppliance
        | Action::BackupAppliance
        | Action::RestoreAppliance
        | Action::RotateKek => (subject.is_admin(), "only administrators may do this"),
        Action::ReadHealthDetails => (
            subject.is_admin() || subject.has(&Role::Operator) || subject.has(&Role::Auditor),
            "health details need the admin, operator or auditor role",
        ),
    };
    if allowed {
        Ok(())
    } else {
        Err(Error::Forbidden(why.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(roles: &[&str]) -> Subject {
        let roles = roles
            .iter()
            .enumerate()
            .map(|(i, name)| RoleRecord {
                id: i as i64 + 1,
                name: (*name).to_owned(),
                description: String::new(),
            })
            .collect();
        Subject::user(
            UserRecord {
                id: 7,
                username: "u".into(),
                email: "u@example.com".into(),
                active: true,
            },
            roles,
            "127.0.0.1".into(),
            None,
        )
    }

    #[test]
    fn read_only_wins_over_an_authority_role() {
        let subject = user(&["ca_operator", "read-only"]);
        let Subject::User(held) = &subject else {
            unreachable!()
        };
        let roles = held.roles.clone();
        assert!(
            authorize(
                &subject,
                Action::Issue {
                    authority_roles: &roles
                }
            )
            .is_err()
        );
        assert!(
            authorize(
                &user(&["ca_operator"]),
                Action::Issue {
                    authority_roles: &roles[..1]
                }
            )
            .is_ok()
        );
    }

    fn certificate_of(owner: &str) -> CertificateRecord {
        CertificateRecord::for_tests(owner)
    }

    #[test]
    fn a_read_only_owner_reads_the_key_but_changes_nothing() {
        let mine = certificate_of("u@example.com");
        let read_only = user(&["read-only"]);
        assert!(authorize(&read_only, Action::ReadPrivateKey(&mine)).is_ok());
        assert!(authorize(&read_only, Action::RevokeCertificate(&mine)).is_err());
        assert!(authorize(&read_only, Action::ReplaceCertificate(&mine)).is_err());
        assert!(authorize(&read_only, Action::IssueFromAny).is_err());
        let auditor = user(&["auditor"]);
        assert!(authorize(&auditor, Action::ReadPrivateKey(&mine)).is_err());
        assert!(authorize(&auditor, Action::ReadCertificate(&mine)).is_ok());
        let owner = user(&[]);
        assert!(authorize(&owner, Action::RevokeCertificate(&mine)).is_ok());
        assert!(
            authorize(&owner, Action::IssueFromAny).is_err(),
            "no role, no issuance"
        );
        let theirs = certificate_of("them@example.com");
        assert!(authorize(&owner, Action::RevokeCertificate(&theirs)).is_err());
        assert!(authorize(&user(&["admin"]), Action::RevokeCertificate(&theirs)).is_ok());
        assert!(authorize(&user(&["team-web"]), Action::IssueFromAny).is_ok());
    }

    #[test]
    fn a_user_with_no_role_sees_only_what_they_own() {
        let subject = user(&[]);
        assert!(authorize(&subject, Action::UploadCertificate).is_err());
        assert!(authorize(&subject, Action::ReadAuthorities).is_err());
        assert_eq!(
            subject.visibility(),
            Visibility::Owned {
                owners: vec!["u@example.com".into()],
                user_id: 7
            }
        );
    }
}

//! Recording what the account flows did, into the hash-chained audit log
//! (`storage::audit`). A flow builds an [`AuditEvent`] and records it inside
//! the transaction that performs the action, so the two commit together.

use std::collections::BTreeMap;

use chrono::{SubsecRound, Utc};
use serde_json::Value;
use storage::audit::AuditEntry as NewAuditRow;
use storage::{AnyConnection, StorageError};

/// Stable event names (snake_case, dotted). They are stored and hashed, and
/// operators filter by them: never rename one, add a new one instead.
pub mod events {
    pub const LOGIN_SUCCEEDED: &str = "login.succeeded";
    pub const LOGIN_FAILED: &str = "login.failed";
    pub const REFRESH_REUSED: &str = "refresh.reused";
    pub const LOGOUT: &str = "logout";
    pub const LOGOUT_ALL: &str = "logout.all";
    pub const PASSWORD_CHANGED: &str = "password.changed";
    pub const PASSWORD_RESET: &str = "password.reset";
    pub const REGISTRATION_SUBMITTED: &str = "registration.submitted";
    pub const REGISTRATION_APPROVED: &str = "registration.approved";
    pub const REGISTRATION_REJECTED: &str = "registration.rejected";
    pub const ACCOUNT_ACTIVATED: &str = "account.activated";
    pub const PERMISSIONS_CHANGED: &str = "permissions.changed";
    pub const ROLES_CHANGED: &str = "roles.changed";
    pub const USER_DISABLED: &str = "user.disabled";
    pub const USER_ENABLED: &str = "user.enabled";
    pub const API_TOKEN_CREATED: &str = "api_token.created";
    pub const API_TOKEN_REVOKED: &str = "api_token.revoked";
    pub const KEY_ROTATED: &str = "key.rotated";
    pub const KEY_REVOKED: &str = "key.revoked";
    pub const ADMIN_CREATED: &str = "admin.created";
    pub const SIGNUP: &str = "signup";
    pub const EMAIL_VERIFIED: &str = "email.verified";
    pub const MFA_ENROLLED: &str = "mfa.enrolled";
    pub const MFA_REMOVED: &str = "mfa.removed";
    pub const MFA_FAILED: &str = "mfa.failed";
    pub const MFA_RESET: &str = "mfa.reset";
    pub const RECOVERY_CODE_USED: &str = "mfa.recovery_code_used";
    pub const RECOVERY_CODES_REGENERATED: &str = "mfa.recovery_codes_regenerated";
    pub const STEP_UP: &str = "mfa.step_up";
    pub const OIDC_SIGNED_IN: &str = "oidc.signed_in";
    pub const OIDC_CODE_REUSED: &str = "oidc.code_reused";
    pub const OIDC_LOGOUT: &str = "oidc.logout";
    pub const OIDC_CONSENT_REVOKED: &str = "oidc.consent_revoked";
    pub const OIDC_DEVICE_DECIDED: &str = "oidc.device_decided";
    pub const CLIENT_ADDED: &str = "client.added";
    pub const CLIENT_REMOVED: &str = "client.removed";
}

/// Who is acting, and from where. `actor` is a user id, or `None` for an
/// anonymous caller or the system itself.
#[derive(Clone, Debug, Default)]
pub struct AuditContext {
    pub actor: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// One event, built up and then [recorded](AuditEvent::record).
#[derive(Clone, Debug)]
pub struct AuditEvent {
    event: &'static str,
    subject: Option<String>,
    organization_id: Option<String>,
    /// A BTreeMap rather than `serde_json::Map`, whose key order depends on
    /// whether any crate in the build enables serde_json's `preserve_order`:
    /// the stored text is sorted by key however the binary was built.
    details: BTreeMap<String, Value>,
}

impl AuditEvent {
    /// `event` is one of [`events`].
    pub fn new(event: &'static str) -> Self {
        Self {
            event,
            subject: None,
            organization_id: None,
            details: BTreeMap::new(),
        }
    }

    /// The user (or other object, such as a registration or key) acted upon.
    pub fn subject(mut self, user_or_object_id: impl Into<String>) -> Self {
        self.subject = Some(user_or_object_id.into());
        self
    }

    pub fn organization(mut self, id: Option<String>) -> Self {
        self.organization_id = id;
        self
    }

    /// Adds one detail; a repeated key replaces the earlier value. The log is
    /// kept for years and read by operators: never pass passwords, tokens,
    /// codes or other secrets.
    pub fn detail(mut self, key: &str, value: impl serde::Serialize) -> Self {
        // Only maps with non-string keys and failing custom `Serialize`
        // impls end up here; losing the event over a detail would be worse.
        let value = serde_json::to_value(value).unwrap_or_else(|e| {
            tracing::warn!(key, error = %e, "audit detail is not serializable");
            Value::String(format!("unserializable: {e}"))
        });
        self.details.insert(key.to_owned(), value);
        self
    }

    /// The details as stored: a JSON object with sorted keys.
    fn details_json(&self) -> String {
        serde_json::to_string(&self.details).expect("JSON values always serialize")
    }

    /// Appends the event inside the caller's transaction (see
    /// `storage::audit::append`; outside one this fails).
    pub(crate) fn record(
        self,
        conn: &mut AnyConnection,
        ctx: &AuditContext,
    ) -> Result<(), StorageError> {
        let details = self.details_json();
        storage::audit::append(
            conn,
            NewAuditRow {
                at: Utc::now().trunc_subsecs(6).naive_utc(),
                actor: ctx.actor.clone(),
                subject: self.subject,
                organization_id: self.organization_id,
                ip: ctx.ip.clone(),
                user_agent: ctx.user_agent.clone(),
                event: self.event.to_owned(),
                details,
            },
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_serialize_with_sorted_keys_whatever_the_insertion_order() {
        let forwards = AuditEvent::new(events::LOGIN_FAILED)
            .detail("a", 1)
            .detail("m", "two")
            .detail("z", [3, 4]);
        let backwards = AuditEvent::new(events::LOGIN_FAILED)
            .detail("z", [3, 4])
            .detail("m", "two")
            .detail("a", 1);
        let expected = r#"{"a":1,"m":"two","z":[3,4]}"#;
        assert_eq!(forwards.details_json(), expected);
        assert_eq!(backwards.details_json(), expected);
    }

    #[test]
    fn no_details_is_an_empty_object_and_a_repeated_key_keeps_the_last_value() {
        assert_eq!(AuditEvent::new(events::LOGOUT).details_json(), "{}");
        let event = AuditEvent::new(events::ROLES_CHANGED)
            .detail("roles", ["admin"])
            .detail("roles", ["admin", "operator"]);
        assert_eq!(event.details_json(), r#"{"roles":["admin","operator"]}"#);
    }

    #[test]
    fn builder_keeps_subject_and_organization() {
        let event = AuditEvent::new(events::USER_DISABLED)
            .subject("user-1")
            .organization(Some("org-1".to_owned()));
        assert_eq!(event.event, "user.disabled");
        assert_eq!(event.subject.as_deref(), Some("user-1"));
        assert_eq!(event.organization_id.as_deref(), Some("org-1"));
    }
}

/// Which audit events to list; `None` matches anything.
#[derive(Clone, Debug, Default)]
pub struct AuditQuery {
    pub event: Option<String>,
    pub actor: Option<String>,
    pub subject: Option<String>,
    pub organization_id: Option<String>,
}

/// One recorded event, as the audit API and pages show it.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditEntry {
    /// Also the paging cursor: pass the last one as the next `before`.
    pub id: i64,
    pub at: chrono::NaiveDateTime,
    pub actor: Option<String>,
    pub subject: Option<String>,
    pub organization_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub event: String,
    pub details: Value,
    pub hash: String,
}

impl crate::service::Accounts {
    /// Audit events matching `query`, newest first: those with an id below
    /// `before` (all when `None`), at most `limit`.
    pub fn audit_log(
        &self,
        query: &AuditQuery,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, crate::error::AccountsError> {
        let filter = storage::audit::AuditFilter {
            event: query.event.clone(),
            actor: query.actor.clone(),
            subject: query.subject.clone(),
            organization_id: query.organization_id.clone(),
        };
        let mut conn = self.conn()?;
        let rows = storage::audit::page(&mut conn, &filter, before, limit)?;
        Ok(rows
            .into_iter()
            .map(|r| AuditEntry {
                id: r.id,
                at: r.at,
                actor: r.actor,
                subject: r.subject,
                organization_id: r.organization_id,
                ip: r.ip,
                user_agent: r.user_agent,
                event: r.event,
                details: serde_json::from_str(&r.details).unwrap_or_default(),
                hash: r.hash,
            })
            .collect())
    }
}

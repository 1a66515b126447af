//! Operator and organization-admin actions on users: search, roles,
//! permissions, disabling. Every change that narrows what a user may do
//! takes effect at once: sessions are revoked (new tokens carry the new
//! claims at the next login/refresh) and API tokens that exceed the new
//! permissions are revoked.

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use storage::AnyConnection;
use storage::models::{NewRevocation, UserRow};
use storage::repo::{api_tokens, revocations, users};

use crate::audit::{AuditContext, AuditEvent, events};
use crate::error::AccountsError;
use crate::permissions::Role;
use crate::service::{Accounts, RevokedSession};
use crate::types::{EmailAddress, UserStatus};

type Result<T> = std::result::Result<T, AccountsError>;

/// Who is acting, with what authority (from their verified token, or the
/// operator CLI).
#[derive(Clone, Debug)]
pub struct Actor {
    pub user_id: String,
    /// The session the actor acts through (the token's `sid`, the browser
    /// session), for the step-up check of sensitive changes. `None` only for
    /// [`Actor::operator`], which has no session and is exempt; any other
    /// actor without one is refused those changes.
    pub session_id: Option<String>,
    pub roles: Vec<String>,
    pub perms: Vec<String>,
    pub org: Option<String>,
    pub context: AuditContext,
}

/// The actor id of the operator at the command line.
const OPERATOR_ID: &str = "cli";

impl Actor {
    /// The operator at the command line: full authority.
    pub fn operator() -> Self {
        Self {
            user_id: OPERATOR_ID.to_owned(),
            session_id: None,
            roles: vec![Role::Admin.as_str().to_owned()],
            perms: Vec::new(),
            org: None,
            context: AuditContext {
                actor: Some(OPERATOR_ID.to_owned()),
                ..AuditContext::default()
            },
        }
    }

    /// The operator at the command line ([`Actor::operator`]).
    pub fn is_operator(&self) -> bool {
        self.user_id == OPERATOR_ID && self.session_id.is_none()
    }

    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|r| r == Role::Admin.as_str())
    }

    pub fn is_org_admin(&self) -> bool {
        self.roles.iter().any(|r| r == Role::OrgAdmin.as_str())
    }

    /// Whether a user of `organization` is visible to this actor: every
    /// user for an operator, the own organization's for anyone else (an
    /// actor without an organization sees none: `None` is not a match).
    pub fn may_see(&self, organization: Option<&str>) -> bool {
        self.is_admin() || (self.org.is_some() && self.org.as_deref() == organization)
    }
}

/// A user as the admin API shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserView {
    pub id: String,
    pub email: String,
    pub username: Option<String>,
    pub name: Option<String>,
    pub status: String,
    pub organization_id: Option<String>,
    pub roles: Vec<String>,
    pub permissions: Vec<String>,
    pub permission_version: i64,
    pub must_change_password: bool,
    pub created_at: NaiveDateTime,
}

/// A change to a user; `None` leaves a field alone.
#[derive(Clone, Debug, Default)]
pub struct UserUpdate {
    pub roles: Option<Vec<String>>,
    pub permissions: Option<Vec<String>>,
    pub disabled: Option<bool>,
    pub must_change_password: Option<bool>,
}

/// An API token revoked just now, and until when it would have been valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokedToken {
    pub jti: String,
    pub until: i64,
}

/// What a change revoked, for the caller's in-memory revocation set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Revoked {
    pub sessions: Vec<RevokedSession>,
    pub tokens: Vec<RevokedToken>,
}

impl Accounts {
    fn view(&self, c: &mut AnyConnection, row: UserRow) -> Result<UserView> {
        let (roles, permissions) = users::roles_and_permissions(c, &row.id)?;
        Ok(UserView {
            roles,
            permissions,
            id: row.id,
            email: row.email,
            username: row.username,
            name: row.name,
            status: row.status,
            organization_id: row.organization_id,
            permission_version: row.permission_version,
            must_change_password: row.must_change_password,
            created_at: row.created_at,
        })
    }

    pub fn user_view(&self, id: &str) -> Result<Option<UserView>> {
        let mut conn = self.conn()?;
        users::find_by_id(&mut conn, id)?
            .map(|row| self.view(&mut conn, row))
            .transpose()
    }

    pub fn user_by_email(&self, email: &EmailAddress) -> Result<Option<UserView>> {
        let mut conn = self.conn()?;
        users::find_by_email(&mut conn, email.as_str())?
            .map(|row| self.view(&mut conn, row))
            .transpose()
    }

    /// Admins see everyone; organization admins only their organization.
    pub fn search_users(
        &self,
        actor: &Actor,
        query: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<UserView>> {
        let scope = match (actor.is_admin(), actor.is_org_admin(), &actor.org) {
            (true, _, _) => None,
            (false, true, Some(org)) => Some(org.as_str()),
            _ => return Err(AccountsError::Forbidden),
        };
        let mut conn = self.conn()?;
        let rows = users::search(&mut conn, query, scope, offset, limit)?;
        rows.into_iter()
            .map(|row| self.view(&mut conn, row))
            .collect()
    }

    /// The one place user authority changes. See the module docs for effects.
    ///
    /// An update naming roles or permissions, or enabling an account (which
    /// gives its roles and permissions back), is sensitive: the actor's
    /// session must have authenticated recently
    /// ([`AccountsError::StepUpRequired`] otherwise; the operator at the
    /// command line is exempt). Disabling stays quick: it only takes away.
    pub fn update_user(
        &self,
        actor: &Actor,
        id: &str,
        update: UserUpdate,
    ) -> Result<(UserView, Revoked)> {
        if update.roles.is_some() || update.permissions.is_some() || update.disabled == Some(false)
        {
            self.check_actor_step_up(actor)?;
        }
        let permissions = update
            .permissions
            .as_deref()
            .map(|p| self.catalog.validate(p))
            .transpose()?;
        let roles = update.roles.as_deref().map(Role::validate).transpose()?;
        let (view, revoked) = self.transact(|c, at| {
            let Some(target) = users::find_by_id(c, id)? else {
                return Ok(Err(AccountsError::UserNotFound));
            };
            let target_roles = users::roles(c, id)?;
            if let Err(e) = authorize(
                actor,
                &target,
                &target_roles,
                permissions.as_deref(),
                roles.as_deref(),
            ) {
                return Ok(Err(e));
            }
            let change = (roles.as_deref(), update.disabled);
            if let Err(e) = keeps_an_admin(c, actor, &target, &target_roles, change) {
                return Ok(Err(e));
            }
            let mut revoked = Revoked::default();
            let org = target.organization_id.clone();
            if let Some(permissions) = &permissions {
                let before = users::permissions(c, id)?;
                if &before != permissions {
                    users::replace_permissions(c, id, permissions, at.naive_utc())?;
                    revoked.sessions.extend(self.revoke_sessions_in(
                        c,
                        id,
                        None,
                        "permissions_changed",
                        at,
                    )?);
                    revoked.tokens.extend(self.revoke_api_tokens_in(
                        c,
                        id,
                        Some(permissions),
                        at,
                    )?);
                    AuditEvent::new(events::PERMISSIONS_CHANGED)
                        .subject(id)
                        .organization(org.clone())
                        .detail("before", &before)
                        .detail("after", permissions)
                        .record(c, &actor.context)?;
                }
            }
            if let Some(roles) = &roles {
                let before = users::roles(c, id)?;
                if &before != roles {
                    users::replace_roles(c, id, roles, at.naive_utc())?;
                    revoked.sessions.extend(self.revoke_sessions_in(
                        c,
                        id,
                        None,
                        "roles_changed",
                        at,
                    )?);
                    AuditEvent::new(events::ROLES_CHANGED)
                        .subject(id)
                        .organization(org.clone())
                        .detail("before", &before)
                        .detail("after", roles)
                        .record(c, &actor.context)?;
                }
            }
            match (update.disabled, UserStatus::parse(&target.status)) {
                (Some(true), Some(status)) if status != UserStatus::Disabled => {
                    users::set_status(c, id, UserStatus::Disabled.as_str(), at.naive_utc())?;
                    revoked
                        .sessions
                        .extend(self.revoke_sessions_in(c, id, None, "disabled", at)?);
                    revoked
                        .tokens
                        .extend(self.revoke_api_tokens_in(c, id, None, at)?);
                    AuditEvent::new(events::USER_DISABLED)
                        .subject(id)
                        .organization(org.clone())
                        .record(c, &actor.context)?;
                }
                (Some(false), Some(UserStatus::Disabled)) => {
                    users::set_status(c, id, UserStatus::Active.as_str(), at.naive_utc())?;
                    AuditEvent::new(events::USER_ENABLED)
                        .subject(id)
                        .organization(org.clone())
                        .record(c, &actor.context)?;
                }
                _ => {}
            }
            if let Some(flag) = update.must_change_password {
                users::set_must_change_password(c, id, flag, at.naive_utc())?;
            }
            let row = users::find_by_id(c, id)?.ok_or(AccountsError::UserNotFound)?;
            Ok(Ok((self.view(c, row)?, revoked)))
        })?;
        Ok((view, self.published(revoked)))
    }

    /// Revokes the user's live API tokens; with `keep_within`, only those
    /// holding a permission outside it.
    pub(crate) fn revoke_api_tokens_in(
        &self,
        c: &mut AnyConnection,
        user_id: &str,
        keep_within: Option<&[String]>,
        at: DateTime<Utc>,
    ) -> Result<Vec<RevokedToken>> {
        let allowed: Option<BTreeSet<&str>> =
            keep_within.map(|p| p.iter().map(String::as_str).collect());
        let mut revoked = Vec::new();
        for token in api_tokens::live_for_user(c, user_id, at.naive_utc())? {
            let covered = allowed.as_ref().is_some_and(|allowed| {
                token
                    .permissions
                    .split_whitespace()
                    .all(|p| allowed.contains(p))
            });
            if covered {
                continue;
            }
            if let Some(row) = api_tokens::revoke(c, user_id, &token.id, at.naive_utc())? {
                revoked.push(self.record_token_revocation(c, &row.id, row.expires_at, at)?);
            }
        }
        Ok(revoked)
    }

    /// Publishes a token revocation (the `/revocations` feed and other
    /// instances read it) until the token would have expired anyway.
    pub(crate) fn record_token_revocation(
        &self,
        c: &mut AnyConnection,
        jti: &str,
        token_expires_at: NaiveDateTime,
        at: DateTime<Utc>,
    ) -> Result<RevokedToken> {
        let until = token_expires_at + TimeDelta::seconds(self.verifier.policy().leeway_secs);
        revocations::insert(
            c,
            &NewRevocation {
                kind: "jti",
                subject: jti,
                expires_at: until,
                created_at: at.naive_utc(),
            },
        )?;
        Ok(RevokedToken {
            jti: jti.to_owned(),
            until: until.and_utc().timestamp(),
        })
    }
}

/// May `actor` apply this change to `target`?
/// Refuses an update that would disable or demote the last active admin
/// (two admins demoting each other at once are serialized by a lock). The
/// operator at the command line is exempt: it can always make a new admin.
fn keeps_an_admin(
    c: &mut AnyConnection,
    actor: &Actor,
    target: &UserRow,
    target_roles: &[String],
    (roles, disabled): (Option<&[String]>, Option<bool>),
) -> Result<()> {
    let admin = Role::Admin.as_str();
    let demoted = roles.is_some_and(|r| !r.iter().any(|r| r == admin));
    let disabling = disabled == Some(true);
    if actor.is_operator() || !(demoted || disabling) {
        return Ok(());
    }
    if UserStatus::parse(&target.status) != Some(UserStatus::Active)
        || !target_roles.iter().any(|r| r == admin)
    {
        return Ok(());
    }
    storage::repo::lock_key(c, "last admin")?;
    if users::count_active_with_role(c, admin, &target.id)? == 0 {
        return Err(AccountsError::LastAdmin);
    }
    Ok(())
}

fn authorize(
    actor: &Actor,
    target: &UserRow,
    target_roles: &[String],
    permissions: Option<&[String]>,
    roles: Option<&[String]>,
) -> Result<()> {
    if actor.is_admin() {
        return Ok(());
    }
    let same_org = actor.org.is_some() && actor.org == target.organization_id;
    if !actor.is_org_admin() || !same_org || target_roles.iter().any(|r| r == Role::Admin.as_str())
    {
        return Err(AccountsError::Forbidden);
    }
    if roles.is_some_and(|r| r.iter().any(|r| r == Role::Admin.as_str())) {
        return Err(AccountsError::Forbidden);
    }
    if let Some(permissions) = permissions {
        let missing: Vec<String> = permissions
            .iter()
            .filter(|p| !actor.perms.contains(p))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(AccountsError::PermissionNotHeld(missing));
        }
    }
    Ok(())
}

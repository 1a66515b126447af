//! Personal API tokens (the seed-000 dashboard JWTs): signed JWTs with
//! `typ: api+jwt` whose `jti` is recorded, shown once, listed without the
//! secret, revocable. Their permissions must be a subset of the creator's.

use auth_core::{API_TOKEN_TYP, ApiTokenSubject};
use chrono::{NaiveDateTime, TimeDelta};
use secrecy::SecretString;
use storage::models::ApiTokenRow;
use storage::repo::{api_tokens, users};

use crate::admin::RevokedToken;
use crate::audit::{AuditContext, AuditEvent, events};
use crate::error::AccountsError;
use crate::service::{Accounts, now};
use crate::types::ParseError;

type Result<T> = std::result::Result<T, AccountsError>;

/// Lifetime when the request names none.
pub const DEFAULT_LIFETIME_DAYS: i64 = 90;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiTokenView {
    pub id: String,
    pub name: String,
    pub permissions: Vec<String>,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub last_used_at: Option<NaiveDateTime>,
}

impl From<ApiTokenRow> for ApiTokenView {
    fn from(row: ApiTokenRow) -> Self {
        Self {
            permissions: row
                .permissions
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            id: row.id,
            name: row.name,
            created_at: row.created_at,
            expires_at: row.expires_at,
            last_used_at: row.last_used_at,
        }
    }
}

/// A new token: the view, and the secret that is shown this once.
pub struct CreatedApiToken {
    pub view: ApiTokenView,
    pub token: SecretString,
}

/// The longest token name, in characters.
pub const NAME_MAX_CHARS: usize = 100;

fn token_name(name: &str) -> Result<String> {
    let name = name.trim();
    let count = name.chars().count();
    if count == 0 || count > NAME_MAX_CHARS || name.chars().any(char::is_control) {
        return Err(ParseError {
            field: "name",
            reason: "must be 1 to 100 characters, without control characters",
        }
        .into());
    }
    Ok(name.to_owned())
}

impl Accounts {
    /// A new token for `owner_id`, created from its session `session_id`.
    /// Sensitive: the session must have authenticated recently, with the
    /// second factor if the owner has one
    /// ([`AccountsError::StepUpRequired`] otherwise), since a token outlives
    /// the session and every later sign-in.
    pub fn create_api_token(
        &self,
        owner_id: &str,
        session_id: &str,
        name: &str,
        permissions: &[String],
        expires_in_days: Option<i64>,
        context: &AuditContext,
    ) -> Result<CreatedApiToken> {
        self.check_step_up(owner_id, session_id)?;
        let name = token_name(name)?;
        let permissions = self.catalog.validate(permissions)?;
        let days = expires_in_days.unwrap_or(DEFAULT_LIFETIME_DAYS.min(self.api_token_max_days));
        if !(1..=self.api_token_max_days).contains(&days) {
            return Err(ParseError {
                field: "expires_in_days",
                reason: "must be between 1 and the configured maximum",
            }
            .into());
        }
        let id = uuid::Uuid::new_v4().to_string();
        let (view, token) = self.transact(|c, at| {
            let Some(owner) = users::find_by_id(c, owner_id)? else {
                return Ok(Err(AccountsError::UserNotFound));
            };
            // An account that exists only for a registered client's users
            // acts through that client, never with tokens of its own.
            if storage::repo::clients::is_client_user(c, owner_id)? {
                return Ok(Err(AccountsError::Forbidden));
            }
            // Authority comes from the database, not from the caller's token,
            // which may predate a permission removal.
            let held = users::permissions(c, owner_id)?;
            let missing: Vec<String> = permissions
                .iter()
                .filter(|p| !held.contains(p))
                .cloned()
                .collect();
            if !missing.is_empty() {
                return Ok(Err(AccountsError::PermissionNotHeld(missing)));
            }
            let lifetime = TimeDelta::days(days);
            let claims = self.verifier.policy().api_token_claims(
                ApiTokenSubject {
                    user_id: owner.id.clone(),
                    token_id: id.clone(),
                    org: owner.organization_id.clone(),
                    perms: permissions.clone(),
                },
                at.timestamp(),
                lifetime.num_seconds(),
            );
            let token = self.keys().sign(API_TOKEN_TYP, &claims)?;
            let row = ApiTokenRow {
                id: id.clone(),
                user_id: owner.id.clone(),
                name: name.clone(),
                permissions: permissions.join(" "),
                created_at: at.naive_utc(),
                expires_at: (at + lifetime).naive_utc(),
                last_used_at: None,
                revoked_at: None,
            };
            api_tokens::insert(c, &row)?;
            AuditEvent::new(events::API_TOKEN_CREATED)
                .subject(&owner.id)
                .organization(owner.organization_id.clone())
                .detail("token_id", &id)
                .detail("name", &name)
                .detail("permissions", &permissions)
                .detail("expires_at", row.expires_at.and_utc().to_rfc3339())
                .record(c, context)?;
            Ok(Ok((ApiTokenView::from(row), token)))
        })?;
        Ok(CreatedApiToken {
            view,
            token: SecretString::from(token),
        })
    }

    pub fn list_api_tokens(&self, owner_id: &str) -> Result<Vec<ApiTokenView>> {
        let mut conn = self.conn()?;
        Ok(
            api_tokens::live_for_user(&mut conn, owner_id, now().naive_utc())?
                .into_iter()
                .map(ApiTokenView::from)
                .collect(),
        )
    }

    pub fn revoke_api_token(
        &self,
        owner_id: &str,
        token_id: &str,
        context: &AuditContext,
    ) -> Result<RevokedToken> {
        let revoked = self.transact(|c, at| {
            let Some(row) = api_tokens::revoke(c, owner_id, token_id, at.naive_utc())? else {
                return Ok(Err(AccountsError::ApiTokenNotFound));
            };
            let revoked = self.record_token_revocation(c, &row.id, row.expires_at, at)?;
            AuditEvent::new(events::API_TOKEN_REVOKED)
                .subject(owner_id)
                .detail("token_id", token_id)
                .record(c, context)?;
            Ok(Ok(revoked))
        })?;
        Ok(self.published(revoked))
    }

    /// Notes that the API token `jti` was used now. Kept in memory and
    /// written in batches by [`flush_api_token_use`](Self::flush_api_token_use)
    /// (the background task does it every 10 s): a database write per
    /// authenticated request would make token checks cost a round trip.
    pub fn note_api_token_use(&self, jti: &str) {
        let now = now().naive_utc();
        let mut uses = self
            .api_token_uses
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        uses.insert(jti.to_owned(), now);
    }

    /// Writes the last-use times noted since the previous flush.
    pub fn flush_api_token_use(&self) -> Result<()> {
        let uses: Vec<(String, NaiveDateTime)> = {
            let mut uses = self
                .api_token_uses
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            uses.drain().collect()
        };
        if uses.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn()?;
        for (id, at) in &uses {
            api_tokens::touch(&mut conn, id, *at)?;
        }
        Ok(())
    }
}

//! Registered clients (other services) and the identities they vouch for.
//! A client authenticates with HTTP Basic `client_id:client_secret`; the
//! secret (256 random bits) is stored as SHA-256 and compared in constant
//! time. A client that has authenticated a user itself (buzzbook's
//! service-to-service token call) gets sessions for a shadow account bound to
//! its own user id: stable, password-less, never able to log in by password.

use secrecy::SecretString;
use storage::models::ExternalIdentityRow;
use storage::repo::{clients, users};
use subtle::ConstantTimeEq;

use crate::audit::{AuditContext, AuditEvent, events};
use crate::client_tokens::ClientTokens;
use crate::error::AccountsError;
use crate::secrets::token_hash;
use crate::service::{Accounts, ClientInfo, NewAccount, now};
use crate::types::{DisplayName, EmailAddress, UserStatus};

type Result<T> = std::result::Result<T, AccountsError>;

pub struct CreatedClient {
    pub client_id: String,
    /// Shown once; none for a public client.
    pub client_secret: Option<SecretString>,
}

/// A registered client as listed; the secret is never shown again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientView {
    pub created_at: chrono::NaiveDateTime,
    pub revoked_at: Option<chrono::NaiveDateTime>,
    /// Its id, name and, for a relying party, redirect URIs and the rest.
    pub relying_party: crate::oidc::RelyingParty,
}

/// A client whose credentials were just checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthenticatedClient {
    pub id: String,
    pub name: String,
}

/// A refresh token that would be accepted now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveRefreshToken {
    pub user_id: String,
    pub session_id: String,
    /// The relying party whose session it is (OpenID Connect), if any.
    pub relying_party: Option<String>,
    pub issued_at: i64,
    pub expires_at: i64,
}

/// What a client says about a user it authenticated.
#[derive(Clone, Debug)]
pub struct VouchedUser {
    /// The client's own id for the user (1–64 of `[A-Za-z0-9_-]`).
    pub external_id: String,
    pub login_id: String,
    pub role: String,
}

/// The registered client `client_id`, unless it was removed. Client ids
/// are hex; anything else (a NUL byte, say) is unknown without asking the
/// database.
pub(crate) fn active_client(
    conn: &mut storage::AnyConnection,
    client_id: &str,
) -> Result<Option<storage::models::ClientRow>> {
    let plausible =
        (1..=64).contains(&client_id.len()) && client_id.bytes().all(|b| b.is_ascii_alphanumeric());
    if !plausible {
        return Ok(None);
    }
    Ok(clients::find(conn, client_id)?.filter(|row| row.revoked_at.is_none()))
}

fn well_formed_external_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Accounts {
    /// Registers a service client (introspection, revocation, the buzzbook
    /// profile's token call): a secret, no redirect URIs.
    pub fn create_client(&self, name: &str) -> Result<CreatedClient> {
        self.register_client(crate::oidc::NewClient {
            name: name.to_owned(),
            ..Default::default()
        })
    }

    pub fn list_clients(&self) -> Result<Vec<ClientView>> {
        let mut conn = self.conn()?;
        Ok(clients::list(&mut conn)?
            .into_iter()
            .map(|row| ClientView {
                created_at: row.created_at,
                revoked_at: row.revoked_at,
                relying_party: crate::oidc::RelyingParty::from(row),
            })
            .collect())
    }

    /// Revokes a client (after a leaked secret, say): its credentials stop
    /// working, and every session it started ends at once, its users' tokens
    /// with them. False when there was no such active client.
    pub fn remove_client(&self, client_id: &str, context: &AuditContext) -> Result<bool> {
        let revoked = self.transact(|c, at| {
            if !clients::revoke(c, client_id, at.naive_utc())? {
                return Ok(Ok(None));
            }
            AuditEvent::new(events::CLIENT_REMOVED)
                .detail("client_id", client_id)
                .record(c, context)?;
            let ids = storage::repo::sessions::revoke_live_for_client(
                c,
                client_id,
                at.naive_utc(),
                "client_removed",
            )?;
            // Its own tokens (client credentials) too.
            let sessions: Vec<_> = ids
                .into_iter()
                .chain(std::iter::once(crate::oidc::client_sid(client_id)))
                .map(|id| self.record_revocation(c, id, at))
                .collect::<Result<_>>()?;
            Ok(Ok(Some(sessions)))
        })?;
        Ok(self.published(revoked).is_some())
    }

    /// What an opaque refresh token stands for, if it would be accepted now:
    /// unused (or used within the reuse grace window), unexpired, its
    /// session alive and its user active. Reads only.
    pub fn live_refresh_token(&self, token: &str) -> Result<Option<LiveRefreshToken>> {
        let mut conn = self.conn()?;
        let at = now().naive_utc();
        let Some(row) = storage::repo::refresh_tokens::find_by_hash(&mut conn, &token_hash(token))?
        else {
            return Ok(None);
        };
        let Some(session) = storage::repo::sessions::find(&mut conn, &row.session_id)? else {
            return Ok(None);
        };
        // A token rotated moments ago is still accepted within the grace
        // window (a client's duplicate refresh), so it is live until then.
        let grace = chrono::TimeDelta::seconds(self.sessions.reuse_grace_secs);
        let usable = row
            .used_at
            .is_none_or(|used| self.sessions.reuse_grace_secs > 0 && at - used <= grace);
        let live = usable
            && row.expires_at > at
            && session.revoked_at.is_none()
            && session.expires_at > at;
        let user = users::find_by_id(&mut conn, &session.user_id)?;
        match user {
            Some(user) if live && UserStatus::parse(&user.status) == Some(UserStatus::Active) => {
                Ok(Some(LiveRefreshToken {
                    user_id: user.id,
                    relying_party: session.client_id.filter(|_| session.scope.is_some()),
                    session_id: session.id,
                    issued_at: row.created_at.and_utc().timestamp(),
                    expires_at: row.expires_at.and_utc().timestamp(),
                }))
            }
            _ => Ok(None),
        }
    }

    /// Checks `client_id:client_secret`. Unknown ids cost the same hash.
    pub fn authenticate_client(
        &self,
        client_id: &str,
        secret: &str,
    ) -> Result<AuthenticatedClient> {
        let presented = token_hash(secret);
        let mut conn = self.conn()?;
        let row = active_client(&mut conn, client_id)?;
        let stored = row.as_ref().map_or("", |r| r.secret_hash.as_str());
        let matches: bool = presented.as_bytes().ct_eq(stored.as_bytes()).into();
        match row {
            Some(row) if matches => Ok(AuthenticatedClient {
                id: row.id,
                name: row.name,
            }),
            _ => Err(AccountsError::InvalidClient),
        }
    }

    /// A session for the user the client vouches for (a session of
    /// [`Channel::Client`](crate::Channel)), creating the shadow account on
    /// first sight; its token pair.
    pub fn client_vouched_login(
        &self,
        client: &AuthenticatedClient,
        vouched: &VouchedUser,
        info: &ClientInfo,
    ) -> Result<ClientTokens> {
        if !well_formed_external_id(&vouched.external_id) {
            return Err(crate::types::ParseError {
                field: "userId",
                reason: "must be 1 to 64 letters, digits, '-' or '_'",
            }
            .into());
        }
        for (field, value) in [("loginId", &vouched.login_id), ("role", &vouched.role)] {
            if value.trim().is_empty()
                || value.chars().count() > 100
                || value.chars().any(char::is_control)
            {
                return Err(crate::types::ParseError {
                    field,
                    reason: "must be 1 to 100 characters, without control characters",
                }
                .into());
            }
        }
        let identity = self.transact(|c, at| {
            if let Some(identity) = clients::identity(c, &client.id, &vouched.external_id)? {
                clients::update_identity(
                    c,
                    &client.id,
                    &vouched.external_id,
                    &vouched.login_id,
                    &vouched.role,
                )?;
                return Ok(Ok(ExternalIdentityRow {
                    login_id: vouched.login_id.clone(),
                    role: vouched.role.clone(),
                    ..identity
                }));
            }
            // `.invalid` is reserved (RFC 2606): this address can never receive mail or collide.
            let email = EmailAddress::for_client_user(&vouched.external_id, &client.id);
            let account = NewAccount {
                email,
                username: None,
                name: DisplayName::parse(&vouched.login_id).ok(),
                password: None,
                status: UserStatus::Active,
                roles: Vec::new(),
                organization_id: None,
                locale: None,
            };
            let user_id = self.insert_user_in(c, &account, None, at)?;
            let identity = ExternalIdentityRow {
                client_id: client.id.clone(),
                external_id: vouched.external_id.clone(),
                user_id,
                login_id: vouched.login_id.clone(),
                role: vouched.role.clone(),
                created_at: at.naive_utc(),
            };
            clients::insert_identity(c, &identity)?;
            Ok(Ok(identity))
        })?;
        let mut conn = self.conn()?;
        let user =
            users::find_by_id(&mut conn, &identity.user_id)?.ok_or(AccountsError::UserNotFound)?;
        drop(conn);
        if UserStatus::parse(&user.status) != Some(UserStatus::Active) {
            return Err(AccountsError::AccountNotActive);
        }
        let tokens = self.start_session(&user, info, Some(&client.id), &[])?;
        let identity = VouchedUser {
            external_id: identity.external_id,
            login_id: identity.login_id,
            role: identity.role,
        };
        self.client_tokens(&tokens, &identity)
    }
}

//! What any token we issue stands for (RFC 7662 introspection), and ending
//! it (RFC 7009 revocation): access tokens, API tokens, opaque refresh
//! tokens and both client tokens, one place for all, so no kind can be
//! forgotten by a front-end.
//!
//! Introspection is authoritative: besides the signature and times it reads
//! the database (session alive, user active, token not revoked), so a token
//! revoked on another instance a moment ago is already inactive here.

use auth_core::{
    ACCESS_TOKEN_TYP, API_TOKEN_TYP, AccessClaims, ApiTokenClaims, Bearer, CLIENT_TOKEN_TYP,
    ClientTokenClaims, ClientTokenKind, Freshness, MAX_TOKEN_LEN, RevocationKind,
};
use storage::AnyConnection;
use storage::repo::{api_tokens, revocations, sessions, users};

use crate::audit::AuditContext;
use crate::clients::LiveRefreshToken;
use crate::error::AccountsError;
use crate::service::{Accounts, now};
use crate::types::UserStatus;

type Result<T> = std::result::Result<T, AccountsError>;

/// A live token, by kind.
#[derive(Clone, Debug, PartialEq)]
pub enum TokenInfo {
    Access(AccessClaims),
    Api(ApiTokenClaims),
    Refresh(LiveRefreshToken),
    ClientAccess(ClientTokenClaims),
    ClientRefresh {
        claims: ClientTokenClaims,
        live: LiveRefreshToken,
    },
}

impl Accounts {
    /// What `token` stands for if it would be accepted now; `None` for
    /// anything unknown, expired, revoked, spent or malformed.
    pub fn introspect(&self, token: &str) -> Result<Option<TokenInfo>> {
        let token = token.trim();
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Ok(None);
        }
        // Opaque refresh tokens have no dots; our JWTs do.
        if !token.contains('.') {
            return Ok(self.live_refresh_token(token)?.map(TokenInfo::Refresh));
        }
        let now = now().timestamp();
        let verifier = &self.verifier;
        let mut conn = self.conn()?;
        let info = match auth_core::unverified_typ(token).as_deref() {
            Some(API_TOKEN_TYP) => match verifier.bearer(token, now) {
                Ok(Bearer::ApiToken(claims)) => {
                    let live = api_tokens::find(&mut conn, &claims.jti)?
                        .is_some_and(|row| row.revoked_at.is_none() && row.user_id == claims.sub)
                        && user_active(&mut conn, &claims.sub)?;
                    live.then_some(TokenInfo::Api(claims))
                }
                _ => None,
            },
            Some(ACCESS_TOKEN_TYP) => match verifier
                .access(token, now)
                .or_else(|_| verifier.relying_party_access(token, now))
            {
                Ok(claims)
                    if self.session_live(&mut conn, &claims.sid, &claims.sub, &claims.jti)?
                        || self.client_token_live(&mut conn, &claims)? =>
                {
                    Some(TokenInfo::Access(claims))
                }
                _ => None,
            },
            Some(CLIENT_TOKEN_TYP) => {
                let verify = |kind| match verifier.client_token(token, kind, now) {
                    Ok(Freshness::Valid(claims)) => Some(claims),
                    _ => None,
                };
                if let Some(claims) = verify(ClientTokenKind::Access) {
                    self.session_live(&mut conn, &claims.sid, &claims.user_id, &claims.jti)?
                        .then_some(TokenInfo::ClientAccess(claims))
                } else if let Some(claims) = verify(ClientTokenKind::Refresh) {
                    drop(conn);
                    let live = match self.unseal_client_refresh(&claims) {
                        Some(native) => self
                            .live_refresh_token(&native)?
                            .filter(|live| live.session_id == claims.sid),
                        None => None,
                    };
                    live.map(|live| TokenInfo::ClientRefresh { claims, live })
                } else {
                    None
                }
            }
            _ => None,
        };
        Ok(info)
    }

    /// [`introspect`](Self::introspect) for the registered client
    /// `client_id`: a relying party's tokens are active to that client
    /// only (RFC 7662 §2.2: a client learns nothing of another's tokens).
    pub fn introspect_as(&self, client_id: &str, token: &str) -> Result<Option<TokenInfo>> {
        Ok(self
            .introspect(token)?
            .filter(|info| owner(info).is_none_or(|owner| owner == client_id)))
    }

    /// [`revoke_token`](Self::revoke_token) for the registered client
    /// `client_id`: a relying party's tokens are revoked by that client
    /// only (RFC 7009 §2.1); another client's attempt changes nothing and,
    /// as for any unknown token, is answered as done.
    pub fn revoke_token_as(
        &self,
        client_id: &str,
        token: &str,
        context: &AuditContext,
    ) -> Result<bool> {
        let foreign = self
            .introspect(token)?
            .is_some_and(|info| owner(&info).is_some_and(|owner| owner != client_id));
        if foreign {
            return Ok(false);
        }
        self.revoke_token(token, context)
    }

    /// Ends what `token` stands for (RFC 7009): a session token of any kind
    /// ends its session, an API token is revoked. Returns whether anything
    /// live was found.
    ///
    /// An access token past its `exp` is inactive to introspection, yet a
    /// seed contract (company-portal) still renews it while its session
    /// lives; revoking one therefore ends that session too, so a leaked
    /// expired token can be made useless.
    pub fn revoke_token(&self, token: &str, context: &AuditContext) -> Result<bool> {
        let session = match self.introspect(token)? {
            None => match self.renewable_access(token)? {
                Some(session) => session,
                None => return Ok(false),
            },
            Some(TokenInfo::Api(claims)) => {
                return match self.revoke_api_token(&claims.sub, &claims.jti, context) {
                    Ok(_) | Err(AccountsError::ApiTokenNotFound) => Ok(true),
                    Err(e) => Err(e),
                };
            }
            Some(TokenInfo::Access(c)) => (c.sub, c.sid),
            Some(TokenInfo::ClientAccess(c)) => (c.user_id, c.sid),
            Some(TokenInfo::Refresh(live) | TokenInfo::ClientRefresh { live, .. }) => {
                (live.user_id, live.session_id)
            }
        };
        self.logout(&session.0, &session.1, context)?;
        Ok(true)
    }

    /// The user and session of an expired access token that could still be
    /// renewed ([`Accounts::renew_access`]): otherwise valid, its session
    /// alive and its `jti` not spent.
    fn renewable_access(&self, token: &str) -> Result<Option<(String, String)>> {
        let token = token.trim();
        if token.len() > MAX_TOKEN_LEN
            || auth_core::unverified_typ(token).as_deref() != Some(ACCESS_TOKEN_TYP)
        {
            return Ok(None);
        }
        let Ok(Freshness::Expired(claims)) =
            self.verifier.access_or_expired(token, now().timestamp())
        else {
            return Ok(None);
        };
        let mut conn = self.conn()?;
        Ok(self
            .session_live(&mut conn, &claims.sid, &claims.sub, &claims.jti)?
            .then_some((claims.sub, claims.sid)))
    }

    /// A client's own token (client credentials): its client still
    /// registered and the token not revoked (removing the client revokes
    /// its `sid`).
    fn client_token_live(&self, conn: &mut AnyConnection, claims: &AccessClaims) -> Result<bool> {
        if claims.sid != crate::oidc::client_sid(&claims.sub)
            || self
                .verifier
                .revocations()
                .is_revoked(&claims.sid, &claims.jti)
        {
            return Ok(false);
        }
        Ok(crate::clients::active_client(conn, &claims.sub)?.is_some())
    }

    /// The session is alive (not revoked, not past its end, its user's and
    /// active), and the token id `jti` in it is not revoked.
    fn session_live(
        &self,
        conn: &mut AnyConnection,
        session_id: &str,
        user_id: &str,
        jti: &str,
    ) -> Result<bool> {
        if self.verifier.revocations().is_revoked(session_id, jti) {
            return Ok(false);
        }
        let at = now().naive_utc();
        let session_ok = sessions::find(conn, session_id)?
            .is_some_and(|s| s.user_id == user_id && s.revoked_at.is_none() && s.expires_at > at);
        Ok(session_ok
            && !revocations::exists(conn, RevocationKind::Token.as_str(), jti)?
            && user_active(conn, user_id)?)
    }
}

/// The relying party a token was issued to, if any.
fn owner(info: &TokenInfo) -> Option<&str> {
    match info {
        TokenInfo::Access(claims) => claims.client_id.as_deref(),
        TokenInfo::Refresh(live) => live.relying_party.as_deref(),
        _ => None,
    }
}

fn user_active(conn: &mut AnyConnection, user_id: &str) -> Result<bool> {
    Ok(users::find_by_id(conn, user_id)?
        .is_some_and(|u| UserStatus::parse(&u.status) == Some(UserStatus::Active)))
}

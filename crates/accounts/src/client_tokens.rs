//! Tokens for the users a registered client vouches for (the buzzbook
//! profile, seed 003): a pair of `typ: JWT` tokens ([`ClientTokenClaims`])
//! around a session of [`Channel::Client`].
//!
//! The refresh token carries the session's refresh credential sealed
//! (AES-256-GCM under the server's sealing key, bound to the session id):
//! its holder can't read it, and even the plain credential would be refused
//! by the native API, since a client session's tokens rotate only here.
//! Rotation, reuse detection and revocation are the native ones.

use std::sync::Arc;

use auth_core::{CLIENT_TOKEN_TYP, ClientTokenClaims, ClientTokenKind, Freshness, TokenError};
use secrecy::{ExposeSecret, SecretString};

use crate::clients::VouchedUser;
use crate::error::AccountsError;
use crate::service::{Accounts, Channel, ClientInfo, IssuedTokens};

type Result<T> = std::result::Result<T, AccountsError>;

/// A freshly signed pair.
#[derive(Debug)]
pub struct ClientTokens {
    pub access: String,
    pub refresh: String,
    pub access_claims: ClientTokenClaims,
}

/// A verified client token: still valid, or expired but otherwise sound
/// (it still names its session, for a renewal).
pub type ClientTokenState = Freshness<ClientTokenClaims>;

fn seal_label(session_id: &str) -> String {
    format!("client refresh token for session {session_id}")
}

impl Accounts {
    /// Signs the pair for a client session's native tokens.
    pub(crate) fn client_tokens(
        &self,
        tokens: &IssuedTokens,
        identity: &VouchedUser,
    ) -> Result<ClientTokens> {
        let native = &tokens.claims;
        let access_claims = ClientTokenClaims {
            user_id: native.sub.clone(),
            iat: native.iat,
            nbf: native.nbf,
            exp: native.exp,
            sub: ClientTokenKind::Access.as_str().to_owned(),
            iss: native.iss.clone(),
            aud: native.aud.clone(),
            jti: native.jti.clone(),
            sid: native.sid.clone(),
            external_id: identity.external_id.clone(),
            login_id: identity.login_id.clone(),
            role: identity.role.clone(),
            rt: None,
        };
        let sealed = self.sealing_key.seal(
            &seal_label(&native.sid),
            tokens.refresh_token.expose_secret().as_bytes(),
        );
        let refresh_claims = ClientTokenClaims {
            sub: ClientTokenKind::Refresh.as_str().to_owned(),
            exp: native.iat + tokens.refresh_expires_in,
            jti: uuid::Uuid::new_v4().to_string(),
            rt: Some(sealed),
            ..access_claims.clone()
        };
        let keys = self.keys();
        Ok(ClientTokens {
            access: keys.sign(CLIENT_TOKEN_TYP, &access_claims)?,
            refresh: keys.sign(CLIENT_TOKEN_TYP, &refresh_claims)?,
            access_claims,
        })
    }

    /// Verifies a client token of `kind` (signature, `typ`, `iss`, `aud`,
    /// `nbf`) and that neither it nor its session is revoked; an expired one
    /// comes back as [`ClientTokenState::Expired`]. No database read.
    pub fn check_client_token(
        &self,
        token: &str,
        kind: ClientTokenKind,
    ) -> std::result::Result<ClientTokenState, TokenError> {
        self.verifier
            .client_token(token, kind, chrono::Utc::now().timestamp())
    }

    /// Rotates a client session's refresh token (from a refresh token that
    /// [`check_client_token`](Self::check_client_token) found valid) and
    /// signs a new pair for the same identity.
    pub fn client_refresh(
        &self,
        refresh: &ClientTokenClaims,
        origin: &ClientInfo,
    ) -> Result<ClientTokens> {
        let native = self.sealed_refresh(refresh)?;
        let tokens = self.rotate(&native, Some(&refresh.sid), Channel::Client, origin)?;
        self.client_tokens(&tokens, &vouched(refresh))
    }

    /// [`client_refresh`](Self::client_refresh) for async callers: waits
    /// for the group commit without holding a thread.
    pub async fn client_refresh_async(
        self: &Arc<Self>,
        refresh: &ClientTokenClaims,
        origin: &ClientInfo,
    ) -> Result<ClientTokens> {
        let native = self.sealed_refresh(refresh)?;
        let tokens = self
            .rotate_async(&native, Some(&refresh.sid), Channel::Client, origin)
            .await?;
        self.client_tokens(&tokens, &vouched(refresh))
    }

    fn sealed_refresh(&self, refresh: &ClientTokenClaims) -> Result<SecretString> {
        self.unseal_client_refresh(refresh)
            .map(SecretString::from)
            .ok_or(AccountsError::InvalidRefreshToken)
    }

    /// The native refresh credential inside a client refresh token, for
    /// introspection and revocation; `None` when it was not sealed by us.
    pub(crate) fn unseal_client_refresh(&self, refresh: &ClientTokenClaims) -> Option<String> {
        let sealed = refresh.rt.as_deref()?;
        let plain = self.sealing_key.open(&seal_label(&refresh.sid), sealed)?;
        String::from_utf8(plain).ok()
    }
}

/// The identity a client refresh token carries, vouched for again.
fn vouched(refresh: &ClientTokenClaims) -> VouchedUser {
    VouchedUser {
        external_id: refresh.external_id.clone(),
        login_id: refresh.login_id.clone(),
        role: refresh.role.clone(),
    }
}

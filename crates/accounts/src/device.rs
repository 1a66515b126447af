//! The device authorization grant (RFC 8628), for command-line tools and
//! devices without a browser: the device gets a device code (its secret)
//! and a short user code; the user types the user code on our page in a
//! browser where they are signed in, sees which application asks for what,
//! and approves or denies; the device polls the token endpoint and, once
//! approved, gets tokens like a relying party after a code exchange (a
//! session of its own that follows the browser session).
//!
//! Both codes are stored as SHA-256 only. A user code is 8 letters from an
//! alphabet without vowels (no words, nothing to misread), ≈ 34 bits, for
//! 10 minutes; guesses count against the per-IP code-attempt limit.

use chrono::TimeDelta;
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::{ExposeSecret, SecretString};
use storage::models::DeviceCodeRow;
use storage::repo::device_codes;

use crate::audit::{AuditContext, AuditEvent, events};
use crate::error::AccountsError;
use crate::oidc::{RelyingParty, RelyingPartyTokens, Start, granted_scope};
use crate::secrets::{new_opaque_token, token_hash};
use crate::service::{Accounts, ClientInfo, now};

type Result<T> = std::result::Result<T, AccountsError>;

/// How long a device code and its user code live.
pub const DEVICE_CODE_TTL_SECS: i64 = 600;
/// The least time between two polls, at first (RFC 8628 §3.2).
pub const POLL_INTERVAL_SECS: i64 = 5;
/// Letters of user codes: consonants only.
const USER_CODE_ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
const USER_CODE_LEN: usize = 8;

/// What the device shows and keeps (RFC 8628 §3.2).
#[derive(Debug)]
pub struct DeviceAuthorization {
    /// The device's secret for polling.
    pub device_code: SecretString,
    /// `XXXX-XXXX`, for the user to type.
    pub user_code: String,
    pub expires_in: i64,
    pub interval: i64,
}

/// A pending device authorization, as the confirmation page shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingDevice {
    pub client_name: String,
    pub scopes: Vec<String>,
    /// The code as typed, normalized (`XXXX-XXXX`).
    pub user_code: String,
}

fn new_user_code() -> String {
    let random = SystemRandom::new();
    let mut code = String::with_capacity(USER_CODE_LEN + 1);
    let mut byte = [0u8; 1];
    while code.len() < USER_CODE_LEN + 1 {
        if code.len() == 4 {
            code.push('-');
            continue;
        }
        // 240 = 12 × 20: rejecting the rest keeps every letter equally likely.
        if random.fill(&mut byte).is_ok() && byte[0] < 240 {
            code.push(char::from(
                USER_CODE_ALPHABET[usize::from(byte[0]) % USER_CODE_ALPHABET.len()],
            ));
        }
    }
    code
}

/// A typed user code in its stored form (`XXXX-XXXX`): case, spaces and
/// dashes don't matter. `None` when it can't be one of ours.
pub fn normalize_user_code(typed: &str) -> Option<String> {
    let letters: String = typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let ours =
        letters.len() == USER_CODE_LEN && letters.bytes().all(|b| USER_CODE_ALPHABET.contains(&b));
    ours.then(|| format!("{}-{}", &letters[..4], &letters[4..]))
}

impl Accounts {
    /// Starts a device authorization for `client` (RFC 8628 §3.1): the
    /// scope must include `openid` and stay within what the client may ask
    /// for.
    pub fn start_device_authorization(
        &self,
        client: &RelyingParty,
        scope: Option<&str>,
    ) -> Result<DeviceAuthorization> {
        let scope =
            granted_scope(client, scope.unwrap_or("openid")).ok_or(AccountsError::InvalidScope)?;
        let at = now();
        let device_code = new_opaque_token();
        let mut conn = self.conn()?;
        // A user code could collide with a live one (≈ 2.6e10 codes): draw again.
        for _ in 0..5 {
            let user_code = new_user_code();
            let row = DeviceCodeRow {
                device_code_hash: token_hash(device_code.expose_secret()),
                user_code_hash: token_hash(&user_code),
                client_id: client.id.clone(),
                scope: scope.clone(),
                created_at: at.naive_utc(),
                expires_at: (at + TimeDelta::seconds(DEVICE_CODE_TTL_SECS)).naive_utc(),
                interval_secs: POLL_INTERVAL_SECS,
                last_polled_at: None,
                user_id: None,
                sso_session_id: None,
                approved_at: None,
                denied_at: None,
                consumed_at: None,
            };
            if device_codes::by_user_code(&mut conn, &row.user_code_hash)?.is_none() {
                device_codes::insert(&mut conn, &row)?;
                return Ok(DeviceAuthorization {
                    device_code,
                    user_code,
                    expires_in: DEVICE_CODE_TTL_SECS,
                    interval: POLL_INTERVAL_SECS,
                });
            }
        }
        Err(AccountsError::BackgroundTask)
    }

    /// The pending authorization a typed user code names, for the page
    /// that asks the user to confirm. Every guess counts against the
    /// per-IP code-attempt limit; unknown, expired or already decided codes
    /// are [`AccountsError::InvalidCode`].
    pub fn pending_device(&self, typed: &str, origin: &ClientInfo) -> Result<PendingDevice> {
        self.admit_code_attempt(origin.ip.as_deref())?;
        let user_code = normalize_user_code(typed).ok_or(AccountsError::InvalidCode)?;
        let mut conn = self.conn()?;
        let row = device_codes::by_user_code(&mut conn, &token_hash(&user_code))?
            .filter(|r| pending(r, now().naive_utc()))
            .ok_or(AccountsError::InvalidCode)?;
        let client = crate::clients::active_client(&mut conn, &row.client_id)?
            .ok_or(AccountsError::InvalidCode)?;
        Ok(PendingDevice {
            client_name: client.name,
            scopes: row.scope.split_whitespace().map(str::to_owned).collect(),
            user_code,
        })
    }

    /// The user's answer for a pending user code, from the browser session
    /// `sso_session_id` (which the device's session will follow).
    pub fn decide_device(
        &self,
        typed: &str,
        user_id: &str,
        sso_session_id: &str,
        approve: bool,
        context: &AuditContext,
    ) -> Result<()> {
        // A guess like any other: the confirmation form takes a code too.
        self.admit_code_attempt(context.ip.as_deref())?;
        let user_code = normalize_user_code(typed).ok_or(AccountsError::InvalidCode)?;
        self.transact(|c, at| {
            let Some(row) = device_codes::by_user_code(c, &token_hash(&user_code))?
                .filter(|r| pending(r, at.naive_utc()))
            else {
                return Ok(Err(AccountsError::InvalidCode));
            };
            if !device_codes::decide(
                c,
                &row.device_code_hash,
                user_id,
                sso_session_id,
                approve,
                at.naive_utc(),
            )? {
                return Ok(Err(AccountsError::InvalidCode));
            }
            AuditEvent::new(events::OIDC_DEVICE_DECIDED)
                .subject(user_id)
                .detail("client_id", &row.client_id)
                .detail("approved", approve)
                .record(c, context)?;
            Ok(Ok(()))
        })
    }

    /// A device's poll (RFC 8628 §3.4, §3.5): tokens once approved (once),
    /// else [`AccountsError::AuthorizationPending`], [`AccountsError::SlowDown`]
    /// (polled sooner than the interval, which grows by 5 s),
    /// [`AccountsError::AccessDenied`], [`AccountsError::ExpiredToken`], or
    /// [`AccountsError::InvalidGrant`] for a code that is not this client's.
    pub fn device_token(
        &self,
        client: &RelyingParty,
        device_code: &str,
        info: &ClientInfo,
    ) -> Result<RelyingPartyTokens> {
        let hash = token_hash(device_code);
        let context = AuditContext::from(info);
        let (issued, sso_session_id) = self.transact(|c, at| {
            let Some(row) = device_codes::by_device_code(c, &hash)?
                .filter(|r| r.client_id == client.id && r.consumed_at.is_none())
            else {
                return Ok(Err(AccountsError::InvalidGrant));
            };
            if row.expires_at <= at.naive_utc() {
                return Ok(Err(AccountsError::ExpiredToken));
            }
            if row.denied_at.is_some() {
                return Ok(Err(AccountsError::AccessDenied));
            }
            let (Some(user_id), Some(sso_session_id), Some(_)) =
                (&row.user_id, &row.sso_session_id, row.approved_at)
            else {
                let too_soon = row.last_polled_at.is_some_and(|last| {
                    at.naive_utc() - last < TimeDelta::seconds(row.interval_secs)
                });
                let interval = row.interval_secs + if too_soon { 5 } else { 0 };
                device_codes::polled(c, &hash, interval, at.naive_utc())?;
                return Ok(Err(if too_soon {
                    AccountsError::SlowDown
                } else {
                    AccountsError::AuthorizationPending
                }));
            };
            let start = Start {
                client_id: &client.id,
                user_id,
                sso_session_id,
                scope: &row.scope,
                info,
                context: &context,
            };
            let claim = |c: &mut storage::AnyConnection, _: &str| {
                device_codes::consume(c, &hash, at.naive_utc())
            };
            Ok(self
                .start_relying_party_session(c, &start, at, claim)?
                .map(|issued| (issued, sso_session_id.clone())))
        })?;
        let id_token = self.id_token(client, &issued, None, &sso_session_id)?;
        Ok(crate::oidc::relying_party_tokens(issued, Some(id_token)))
    }
}

/// Neither decided nor expired.
fn pending(row: &DeviceCodeRow, at: chrono::NaiveDateTime) -> bool {
    row.approved_at.is_none() && row.denied_at.is_none() && row.expires_at > at
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn user_codes_are_eight_consonants_and_read_back_however_typed() {
        let mut seen = HashSet::new();
        for _ in 0..200 {
            let code = new_user_code();
            assert_eq!(code.len(), 9, "{code}");
            assert_eq!(normalize_user_code(&code).as_deref(), Some(code.as_str()));
            let typed = format!(" {} ", code.to_lowercase().replace('-', " "));
            assert_eq!(normalize_user_code(&typed).as_deref(), Some(code.as_str()));
            seen.insert(code);
        }
        assert!(seen.len() > 190, "random enough");
        for bad in ["", "BCDF-GHJ", "BCDF-GHJKL", "ABCD-EFGH", "BCDF-GHJ1"] {
            assert_eq!(normalize_user_code(bad), None, "{bad}");
        }
    }
}

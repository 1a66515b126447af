//! Passkeys (WebAuthn, with kanidm's `webauthn-rs`): register several per
//! account, sign in with one alone, or use one as the second step after a
//! password or for a step-up.
//!
//! - The relying party is the public URL: its host is the RP id, its origin
//!   the only origin accepted. A loopback URL (`http://127.0.0.1:8080`)
//!   becomes `localhost` on any port, because browsers refuse IP addresses
//!   as RP ids and treat `http://localhost` as secure. Any other IP address:
//!   no passkeys ([`AccountsError::PasskeysUnavailable`]).
//! - Every passkey requires user verification (PIN, biometrics), so one
//!   counts as two factors: sessions say `amr: ["hwk"|"swk","user","mfa"]`
//!   (`swk` for a synced passkey, which may live in software).
//! - Passkeys are registered as discoverable credentials, so every sign-in
//!   asks without a list of credentials: a login name narrows who may
//!   finish it but is never answered differently (no account enumeration).
//! - Between options and answer the ceremony lives in the database under
//!   the SHA-256 of an opaque `challenge_id`, five minutes, single use (the
//!   row is deleted by the one request that finishes it), so any instance
//!   finishes what another began and no answer is accepted twice.
//! - A credential id belongs to one account (WebAuthn §7.1 step 22); the
//!   signature counter is checked by webauthn-rs (a counter that goes back
//!   means a cloned authenticator: refused) and stored after each use.

use chrono::{DateTime, TimeDelta, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use storage::models::{PasskeyRow, WebauthnCeremonyRow};
use storage::repo::{passkeys, sessions, users};
use storage::{AnyConnection, Connection};
use webauthn_rs::prelude::{
    CredentialID, DiscoverableAuthentication, DiscoverableKey, Passkey, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, Url, Uuid, Webauthn, WebauthnBuilder,
};

use crate::audit::{AuditContext, AuditEvent, events};
use crate::error::AccountsError;
use crate::service::{Accounts, ClientInfo, IssuedTokens, now};

type Result<T> = std::result::Result<T, AccountsError>;

/// Life of a ceremony between its options and its answer.
pub const CEREMONY_TTL_SECS: i64 = 300;
/// Longest name of a passkey, in characters.
pub const PASSKEY_NAME_MAX_CHARS: usize = 64;
/// Passkeys one account may register.
pub const MAX_PASSKEYS_PER_USER: i64 = 20;

const PURPOSE_REGISTER: &str = "register";
const PURPOSE_ANY: &str = "any";
const PURPOSE_USER: &str = "user";

/// Our relying party, from the public URL.
pub struct RelyingParty {
    webauthn: Webauthn,
    /// The RP id (a host name).
    pub id: String,
}

impl std::fmt::Debug for RelyingParty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelyingParty")
            .field("id", &self.id)
            .finish()
    }
}

impl RelyingParty {
    /// The relying party for `public_url` (see the module's notes), or
    /// `None` when its host is an IP address other than loopback.
    pub fn for_public_url(public_url: &str, name: &str) -> Option<RelyingParty> {
        let url = Url::parse(public_url).ok()?;
        let host = url.host_str()?;
        let loopback = host == "localhost"
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        let (id, origin) = if loopback {
            let origin = Url::parse("http://localhost").ok()?;
            ("localhost".to_owned(), origin)
        } else {
            let domain = url.domain()?.to_owned();
            let origin = Url::parse(&url.origin().ascii_serialization()).ok()?;
            (domain, origin)
        };
        let webauthn = WebauthnBuilder::new(&id, &origin)
            .ok()?
            .rp_name(name)
            .allow_any_port(loopback)
            .timeout(std::time::Duration::from_secs(CEREMONY_TTL_SECS as u64))
            .build()
            .ok()?;
        Some(RelyingParty { webauthn, id })
    }
}

/// A name for a passkey: 1–64 characters after trimming, no control
/// characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasskeyName(String);

impl PasskeyName {
    pub fn parse(name: &str) -> std::result::Result<PasskeyName, &'static str> {
        let name = name.trim();
        if name.is_empty() {
            return Err("is required");
        }
        if name.chars().count() > PASSKEY_NAME_MAX_CHARS {
            return Err("must be at most 64 characters");
        }
        if name.chars().any(char::is_control) {
            return Err("must not contain control characters");
        }
        Ok(PasskeyName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Options for the browser (`navigator.credentials.create/get`, in the
/// JSON form: `{"publicKey": {...}}`) and the id that finishes them.
#[derive(Debug)]
pub struct PasskeyCeremony {
    pub challenge_id: SecretString,
    pub options: Value,
}

/// A registered passkey, as its owner sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasskeySummary {
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<&PasskeyRow> for PasskeySummary {
    fn from(row: &PasskeyRow) -> Self {
        PasskeySummary {
            id: row.id.clone(),
            name: row.name.clone(),
            created_at: row.created_at.and_utc(),
            last_used_at: row.last_used_at.map(|t| t.and_utc()),
        }
    }
}

/// Who may finish a passkey sign-in.
#[derive(Clone, Copy, Debug)]
pub enum PasskeySignIn<'a> {
    /// Whoever the passkey belongs to.
    Anyone,
    /// Only this login's account (email or username); a login that names
    /// nobody is answered the same and can't be finished.
    Login(&'a str),
}

/// A passkey's answer to a sign-in ceremony.
#[derive(Clone, Copy, Debug)]
pub struct PasskeyAssertion<'a> {
    pub challenge_id: &'a str,
    /// The browser's `PublicKeyCredential` (its `toJSON()` form).
    pub credential: &'a Value,
}

/// Serializes what touches one credential until the transaction ends.
fn lock_credential(c: &mut AnyConnection, credential_id: &str) -> Result<()> {
    Ok(storage::repo::lock_key(
        c,
        &format!("passkey {credential_id}"),
    )?)
}

fn credential_id_text(id: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id)
}

/// `amr` of a passkey sign-in: `swk` when the passkey may be synced
/// (backup eligible), else `hwk`; with user verification it is two factors.
fn passkey_amr(backup_eligible: bool) -> [&'static str; 3] {
    [if backup_eligible { "swk" } else { "hwk" }, "user", "mfa"]
}

/// Whether a stored passkey may be synced (webauthn-rs keeps the flag
/// inside; its JSON is ours to read).
fn backup_eligible(stored: &str) -> bool {
    serde_json::from_str::<Value>(stored)
        .ok()
        .and_then(|v| v["cred"]["backup_eligible"].as_bool())
        .unwrap_or(false)
}

fn state_json<T: serde::Serialize>(state: &T) -> Result<String> {
    serde_json::to_string(state).map_err(|e| {
        tracing::error!(error = %e, "could not serialise a WebAuthn state");
        AccountsError::BackgroundTask
    })
}

impl Accounts {
    fn relying_party(&self) -> Result<&RelyingParty> {
        self.relying_party
            .as_deref()
            .ok_or(AccountsError::PasskeysUnavailable)
    }

    /// Whether passkeys can be used here (the public URL names a host).
    pub fn passkeys_available(&self) -> bool {
        self.relying_party.is_some()
    }

    /// The relying party id (the host browsers must be on), if any.
    pub fn passkey_rp_id(&self) -> Option<&str> {
        self.relying_party.as_deref().map(|rp| rp.id.as_str())
    }

    /// The user's passkeys, oldest first.
    pub fn passkeys(&self, user_id: &str) -> Result<Vec<PasskeySummary>> {
        let mut conn = self.conn()?;
        Ok(passkeys::for_user(&mut conn, user_id)?
            .iter()
            .map(PasskeySummary::from)
            .collect())
    }

    fn store_ceremony(
        &self,
        purpose: &str,
        user_id: Option<String>,
        state: String,
        options: Value,
    ) -> Result<PasskeyCeremony> {
        let challenge_id = crate::secrets::new_opaque_token();
        let at = now();
        let row = WebauthnCeremonyRow {
            challenge_hash: crate::secrets::token_hash(challenge_id.expose_secret()),
            purpose: purpose.to_owned(),
            user_id,
            state,
            created_at: at.naive_utc(),
            expires_at: (at + TimeDelta::seconds(CEREMONY_TTL_SECS)).naive_utc(),
        };
        self.conn()?.transaction(|c| -> Result<()> {
            // One registration at a time per account: a new one replaces
            // the unfinished one, so asking again and again stores nothing
            // more (sign-ins are limited per IP instead).
            if purpose == PURPOSE_REGISTER
                && let Some(user_id) = &row.user_id
            {
                passkeys::delete_ceremonies_of(c, user_id, PURPOSE_REGISTER)?;
            }
            passkeys::insert_ceremony(c, &row)?;
            Ok(())
        })?;
        Ok(PasskeyCeremony {
            challenge_id,
            options,
        })
    }

    /// Options to register a new passkey for the caller (a sensitive
    /// operation: [`check_step_up`](Self::check_step_up)). Passkeys the
    /// user has are excluded, so one authenticator isn't registered twice.
    pub fn begin_passkey_registration(
        &self,
        user_id: &str,
        session_id: &str,
    ) -> Result<PasskeyCeremony> {
        let rp = self.relying_party()?;
        self.check_step_up(user_id, session_id)?;
        let (user, existing) = {
            let mut conn = self.conn()?;
            let user = users::find_by_id(&mut conn, user_id)?.ok_or(AccountsError::UserNotFound)?;
            (user, passkeys::for_user(&mut conn, user_id)?)
        };
        if existing.len() as i64 >= MAX_PASSKEYS_PER_USER {
            return Err(AccountsError::TooManyPasskeys);
        }
        let handle = Uuid::parse_str(&user.id).map_err(|_| AccountsError::PasskeysUnavailable)?;
        let exclude: Vec<CredentialID> = existing
            .iter()
            .filter_map(|row| {
                use base64::Engine;
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(&row.credential_id)
                    .ok()
            })
            .collect();
        let account = user.username.clone().unwrap_or_else(|| user.email.clone());
        let display = user.name.clone().unwrap_or_else(|| account.clone());
        let (options, state) = rp
            .webauthn
            .start_passkey_registration(handle, &account, &display, Some(exclude))
            .map_err(|e| {
                tracing::error!(error = %e, "could not start a passkey registration");
                AccountsError::BackgroundTask
            })?;
        let mut options =
            serde_json::to_value(&options).map_err(|_| AccountsError::BackgroundTask)?;
        // Discoverable: a passkey then signs in without a login name, and
        // every sign-in can ask without listing credentials. (webauthn-rs
        // doesn't check this at the end; it only asks the authenticator.)
        if let Some(selection) = options["publicKey"]["authenticatorSelection"].as_object_mut() {
            selection.insert("residentKey".into(), "required".into());
            selection.insert("requireResidentKey".into(), true.into());
        }
        self.store_ceremony(
            PURPOSE_REGISTER,
            Some(user.id),
            state_json(&state)?,
            options,
        )
    }

    /// Finishes a registration begun by
    /// [`begin_passkey_registration`](Self::begin_passkey_registration) in
    /// this user's account: the new passkey, audited. A wrong, foreign,
    /// expired or reused answer, or a credential registered already, is
    /// [`AccountsError::InvalidPasskeyRegistration`].
    pub fn finish_passkey_registration(
        &self,
        user_id: &str,
        session_id: &str,
        challenge_id: &str,
        name: &PasskeyName,
        credential: &Value,
        client: &ClientInfo,
    ) -> Result<PasskeySummary> {
        let rp = self.relying_party()?;
        // The step-up was checked when the options were given; the session
        // must still be this user's and alive.
        self.check_session_alive(user_id, session_id)?;
        let context = AuditContext {
            actor: Some(user_id.to_owned()),
            ..AuditContext::from(client)
        };
        let Ok(answer) = serde_json::from_value::<RegisterPublicKeyCredential>(credential.clone())
        else {
            return Err(AccountsError::InvalidPasskeyRegistration);
        };
        let hash = crate::secrets::token_hash(challenge_id);
        let credential_id = credential_id_text(&answer.raw_id);
        self.transact(|c, at| {
            // Parallel registrations of one credential (to two accounts) or
            // of many passkeys to one account: one at a time, so the
            // uniqueness and the count below hold. Always in this order.
            lock_credential(c, &credential_id)?;
            crate::mfa::lock_second_factors(c, user_id)?;
            let Some(ceremony) = passkeys::claim_ceremony(c, &hash, at.naive_utc())?
                .filter(|row| row.purpose == PURPOSE_REGISTER)
                .filter(|row| row.user_id.as_deref() == Some(user_id))
            else {
                return Ok(Err(AccountsError::InvalidPasskeyRegistration));
            };
            let Ok(state) = serde_json::from_str::<PasskeyRegistration>(&ceremony.state) else {
                return Ok(Err(AccountsError::InvalidPasskeyRegistration));
            };
            let passkey = match rp.webauthn.finish_passkey_registration(&answer, &state) {
                Ok(passkey) => passkey,
                Err(e) => {
                    tracing::info!(error = %e, "passkey registration refused");
                    return Ok(Err(AccountsError::InvalidPasskeyRegistration));
                }
            };
            if passkeys::count_for_user(c, user_id)? >= MAX_PASSKEYS_PER_USER {
                return Ok(Err(AccountsError::TooManyPasskeys));
            }
            let row = PasskeyRow {
                id: Uuid::new_v4().to_string(),
                user_id: user_id.to_owned(),
                credential_id: credential_id_text(passkey.cred_id().as_ref()),
                name: name.as_str().to_owned(),
                credential: state_json(&passkey)?,
                created_at: at.naive_utc(),
                last_used_at: None,
            };
            if !passkeys::insert(c, &row)? {
                return Ok(Err(AccountsError::InvalidPasskeyRegistration));
            }
            // As with a confirmed TOTP app: the ceremony verified the user
            // on this very authenticator, so the session counts as
            // authenticated with it (adding a second passkey needs no new
            // step-up).
            let mut amr = vec!["pwd"];
            amr.extend(passkey_amr(backup_eligible(&row.credential)));
            sessions::set_authentication(c, session_id, &amr.join(" "), at.naive_utc())?;
            AuditEvent::new(events::MFA_ENROLLED)
                .subject(user_id)
                .detail("method", "webauthn")
                .detail("passkey_id", &row.id)
                .record(c, &context)?;
            Ok(Ok(PasskeySummary::from(&row)))
        })
        .map_err(|e| match e {
            // The unique index as the last word (the lock above is keyed
            // by the id the browser claims).
            AccountsError::Storage(storage::StorageError::UniqueViolation) => {
                AccountsError::InvalidPasskeyRegistration
            }
            other => other,
        })
    }

    /// Removes one of the user's passkeys (a sensitive operation). With no
    /// second factor left, the recovery codes go too.
    pub fn remove_passkey(
        &self,
        user_id: &str,
        session_id: &str,
        passkey_id: &str,
        client: &ClientInfo,
    ) -> Result<()> {
        self.check_step_up(user_id, session_id)?;
        let context = AuditContext {
            actor: Some(user_id.to_owned()),
            ..AuditContext::from(client)
        };
        self.transact(|c, _| {
            if !passkeys::delete(c, user_id, passkey_id)? {
                return Ok(Err(AccountsError::PasskeyNotFound));
            }
            if self.second_factors_in(c, user_id)?.is_empty() {
                storage::repo::mfa::delete_recovery_codes(c, user_id)?;
            }
            AuditEvent::new(events::MFA_REMOVED)
                .subject(user_id)
                .detail("method", "webauthn")
                .detail("passkey_id", passkey_id)
                .record(c, &context)?;
            Ok(Ok(()))
        })
    }

    /// Options to sign in with a passkey (alone, as the second step after a
    /// password, or for a step-up). Answered the same whatever the login
    /// names.
    /// Each counts against the client IP's
    /// [`Limit::PasskeyCeremoniesPerIp`](crate::Limit) budget, since each
    /// keeps a row until it is finished or expires.
    pub fn begin_passkey_sign_in(
        &self,
        who: PasskeySignIn<'_>,
        client: &ClientInfo,
    ) -> Result<PasskeyCeremony> {
        let rp = self.relying_party()?;
        let ip = crate::throttle::ip_subject(client.ip.as_deref());
        self.limited(
            "passkey",
            self.throttle
                .take(&[(crate::throttle::Limit::PasskeyCeremoniesPerIp, ip.as_str())]),
        )?;
        let (purpose, user_id) = match who {
            PasskeySignIn::Anyone => (PURPOSE_ANY, None),
            PasskeySignIn::Login(login) => {
                let user = self.find_by_login(login)?;
                (PURPOSE_USER, user.map(|u| u.id))
            }
        };
        let (mut options, state) =
            rp.webauthn
                .start_discoverable_authentication()
                .map_err(|e| {
                    tracing::error!(error = %e, "could not start a passkey sign-in");
                    AccountsError::BackgroundTask
                })?;
        // The page asks for conditional mediation (autofill) itself; API
        // clients get plain options.
        options.mediation = None;
        let options = serde_json::to_value(&options).map_err(|_| AccountsError::BackgroundTask)?;
        self.store_ceremony(purpose, user_id, state_json(&state)?, options)
    }

    /// Checks a passkey's answer inside a write transaction and spends its
    /// ceremony (whatever the outcome: an answer is never tried twice).
    /// `expected`: the account it must belong to, if known. `Ok(Some((user
    /// id, amr)))` when right, `Ok(None)` when not.
    pub(crate) fn spend_passkey(
        &self,
        c: &mut AnyConnection,
        expected: Option<&str>,
        assertion: PasskeyAssertion<'_>,
        at: DateTime<Utc>,
    ) -> Result<Option<(String, [&'static str; 3])>> {
        let rp = self.relying_party()?;
        let hash = crate::secrets::token_hash(assertion.challenge_id);
        let Some(ceremony) = passkeys::claim_ceremony(c, &hash, at.naive_utc())? else {
            return Ok(None);
        };
        if ceremony.purpose == PURPOSE_REGISTER {
            return Ok(None);
        }
        let Ok(answer) =
            serde_json::from_value::<PublicKeyCredential>(assertion.credential.clone())
        else {
            return Ok(None);
        };
        let Ok(state) = serde_json::from_str::<DiscoverableAuthentication>(&ceremony.state) else {
            return Ok(None);
        };
        let Ok((handle, credential_id)) = rp.webauthn.identify_discoverable_authentication(&answer)
        else {
            return Ok(None);
        };
        let credential_id = credential_id_text(credential_id);
        // The counter is read, checked and stored by one request at a time.
        lock_credential(c, &credential_id)?;
        let Some(row) = passkeys::by_credential_id(c, &credential_id)? else {
            return Ok(None);
        };
        let owner_matches = row.user_id == handle.to_string()
            && (ceremony.purpose != PURPOSE_USER
                || ceremony.user_id.as_deref() == Some(&row.user_id))
            && expected.is_none_or(|user| user == row.user_id);
        if !owner_matches {
            return Ok(None);
        }
        let Ok(mut passkey) = serde_json::from_str::<Passkey>(&row.credential) else {
            tracing::error!(passkey = %row.id, "a stored passkey could not be read");
            return Ok(None);
        };
        #[allow(deprecated)] // v2 wants webauthn-rs's `danger-credential-internals`.
        let result = rp.webauthn.finish_discoverable_authentication(
            &answer,
            state,
            &[DiscoverableKey::from(&passkey)],
        );
        let result = match result {
            Ok(result) if result.user_verified() => result,
            Ok(_) => return Ok(None),
            Err(e) => {
                tracing::info!(error = %e, passkey = %row.id, "passkey answer refused");
                return Ok(None);
            }
        };
        let updated = match passkey.update_credential(&result) {
            Some(true) => Some(state_json(&passkey)?),
            _ => None,
        };
        passkeys::record_use(c, &row.id, updated.as_deref(), at.naive_utc())?;
        Ok(Some((row.user_id, passkey_amr(result.backup_eligible()))))
    }

    /// Signs in with a passkey alone: a session whose tokens say
    /// `amr: ["hwk"|"swk","user","mfa"]`. A wrong, foreign, expired or
    /// reused answer, or an account that isn't active, is
    /// [`AccountsError::InvalidPasskey`] (audited).
    pub fn passkey_login(
        &self,
        assertion: PasskeyAssertion<'_>,
        client: &ClientInfo,
    ) -> Result<IssuedTokens> {
        let context = AuditContext::from(client);
        let found = self.transact(|c, at| {
            let found = self.spend_passkey(c, None, assertion, at)?;
            if found.is_none() {
                AuditEvent::new(events::LOGIN_FAILED)
                    .detail("reason", "passkey")
                    .record(c, &context)?;
            }
            Ok(Ok(found))
        })?;
        let (user_id, amr) = found.ok_or(AccountsError::InvalidPasskey)?;
        self.session_after_factors(&user_id, &amr, client, AccountsError::InvalidPasskey)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relying_party_comes_from_the_public_url() {
        let rp = RelyingParty::for_public_url("https://auth.example.com", "x").unwrap();
        assert_eq!(rp.id, "auth.example.com");
        for loopback in [
            "http://127.0.0.1:8080",
            "http://localhost:8080",
            "http://[::1]:9",
        ] {
            let rp = RelyingParty::for_public_url(loopback, "x").unwrap();
            assert_eq!(rp.id, "localhost", "{loopback}");
        }
        assert!(RelyingParty::for_public_url("http://10.0.0.5:8080", "x").is_none());
        assert!(RelyingParty::for_public_url("not a url", "x").is_none());
    }

    #[test]
    fn passkey_names_parse() {
        assert_eq!(PasskeyName::parse("  laptop ").unwrap().as_str(), "laptop");
        assert!(PasskeyName::parse("   ").is_err());
        assert!(PasskeyName::parse(&"x".repeat(65)).is_err());
        assert!(PasskeyName::parse("a\u{0}b").is_err());
        assert!(PasskeyName::parse(&"가".repeat(64)).is_ok());
    }
}

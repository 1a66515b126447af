//! Second factors: TOTP authenticators (RFC 6238), recovery codes, the
//! login's second step (`mfa_token`), step-up checks for sensitive
//! operations and the policy that some roles must have a second factor.
//!
//! - A TOTP secret is 160 random bits, stored sealed; codes are SHA-1, six
//!   digits, 30 s, accepted one step early or late, and each time step at
//!   most once (`totp_credentials.last_used_step` only moves forward, in one
//!   conditional statement, so a code can't be replayed — not even by two
//!   requests at once).
//! - Recovery codes: ten per set, 50 random bits each, stored as keyed
//!   hashes; a code is spent by a conditional update, so exactly once.
//! - A right password for an account with a second factor gives an
//!   `mfa_token` (stored as its SHA-256, 5 minutes, single use). Each wrong
//!   code counts against it by one conditional update: after
//!   [`MAX_WRONG_CODES`] it is dead, however many arrive in parallel on
//!   however many instances. Every code tried also counts against the
//!   account's [`Limit::MfaAttemptsPerAccount`](crate::Limit) budget.
//! - Sessions remember `amr` and `auth_time`; access tokens carry them.

use auth_core::{ACCESS_TOKEN_TYP, AccessClaims};
use chrono::{DateTime, TimeDelta, Utc};
use diesel::Connection;
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::{ExposeSecret, SecretString};
use storage::AnyConnection;
use storage::models::{MfaChallengeRow, SessionRow, TotpRow, UserRow};
use storage::repo::{mfa, sessions, users};
use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, TOTP};

use crate::audit::{AuditContext, AuditEvent, events};
use crate::error::AccountsError;
use crate::service::{Accounts, ClientInfo, IssuedAccess, IssuedTokens, RevokedSession, now};
use crate::throttle::Limit;
use crate::types::{EmailAddress, UserStatus};

type Result<T> = std::result::Result<T, AccountsError>;

/// Life of an `mfa_token`.
pub const MFA_TOKEN_TTL_SECS: i64 = 300;
/// Wrong codes after which an `mfa_token` is dead.
pub const MAX_WRONG_CODES: i64 = 5;
/// Recovery codes in a set.
pub const RECOVERY_CODE_COUNT: usize = 10;
/// TOTP parameters (what every authenticator app supports).
pub const TOTP_DIGITS: usize = 6;
pub const TOTP_STEP_SECS: u64 = 30;
const TOTP_SECRET_BYTES: usize = 20;
/// Base32 alphabet of recovery codes (RFC 4648, lower case).
const RECOVERY_ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
const RECOVERY_CODE_CHARS: usize = 10;

/// Who must have a second factor, and how recent an authentication
/// sensitive operations need.
#[derive(Clone, Debug)]
pub struct MfaPolicy {
    /// Users holding any of these roles reach only their own enrolment
    /// until they have a second factor (default `["admin"]`; empty: off).
    pub required_roles: Vec<String>,
    /// Sensitive operations need an authentication at most this old
    /// (default 600 s).
    pub step_up_max_age_secs: i64,
    /// Issuer shown by authenticator apps (`otpauth://` URI).
    pub issuer: String,
}

impl Default for MfaPolicy {
    fn default() -> Self {
        MfaPolicy {
            required_roles: vec!["admin".to_owned()],
            step_up_max_age_secs: 600,
            issuer: "auth-server".to_owned(),
        }
    }
}

/// The ways a second step can be answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MfaMethod {
    Totp,
    RecoveryCode,
    Webauthn,
}

impl MfaMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            MfaMethod::Totp => "totp",
            MfaMethod::RecoveryCode => "recovery_code",
            MfaMethod::Webauthn => "webauthn",
        }
    }
}

/// What a right password for an account with a second factor gives.
#[derive(Debug)]
pub struct MfaChallenge {
    /// Opaque, single use, [`MFA_TOKEN_TTL_SECS`].
    pub mfa_token: SecretString,
    pub methods: Vec<MfaMethod>,
}

/// A second factor presented.
#[derive(Clone, Copy, Debug)]
pub enum SecondFactor<'a> {
    Totp(&'a str),
    RecoveryCode(&'a str),
    /// A passkey's answer to a sign-in ceremony
    /// ([`Accounts::begin_passkey_sign_in`]).
    Passkey(crate::passkeys::PasskeyAssertion<'a>),
}

/// How a sensitive operation's caller proves itself again.
#[derive(Debug)]
pub enum StepUpProof<'a> {
    /// For users without a second factor.
    Password(&'a SecretString),
    /// For users with one (the password alone is not enough then).
    Factor(SecondFactor<'a>),
}

/// A pending TOTP enrolment: shown once, to be typed or scanned.
#[derive(Debug)]
pub struct TotpEnrolment {
    /// The secret in base32 (what apps take when typed).
    pub secret: SecretString,
    /// `otpauth://totp/…` (what the QR code holds).
    pub otpauth_uri: SecretString,
}

/// A user's second factors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MfaStatus {
    pub totp: bool,
    pub recovery_codes_left: i64,
    pub passkeys: Vec<crate::passkeys::PasskeySummary>,
}

/// The TOTP generator for a raw secret.
pub fn totp(secret: Vec<u8>, digits: usize) -> TOTP {
    TOTP::new_unchecked(Algorithm::SHA1, digits, 1, TOTP_STEP_SECS, secret)
}

/// The time step (of `now` −1, 0, +1) whose code `code` is, if any. All
/// three are compared, in constant time each.
pub fn matching_step(generator: &TOTP, code: &str, now_unix: i64) -> Option<i64> {
    let code = code.trim();
    if code.len() != generator.digits || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let step = now_unix.div_euclid(TOTP_STEP_SECS as i64);
    let mut found = None;
    for candidate in [step - 1, step, step + 1] {
        let Ok(time) = u64::try_from(candidate * TOTP_STEP_SECS as i64) else {
            continue;
        };
        let expected = generator.generate(time);
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) {
            found = Some(candidate);
        }
    }
    found
}

/// Recovery codes as typed: case, spaces and dashes don't matter.
fn normalise_recovery_code(code: &str) -> String {
    code.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0u8; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| AccountsError::BackgroundTask)?;
    Ok(bytes)
}

fn new_recovery_code() -> Result<String> {
    let bytes = random_bytes::<RECOVERY_CODE_CHARS>()?;
    let mut code = String::with_capacity(RECOVERY_CODE_CHARS + 1);
    for (i, b) in bytes.iter().enumerate() {
        if i == RECOVERY_CODE_CHARS / 2 {
            code.push('-');
        }
        code.push(RECOVERY_ALPHABET[usize::from(b & 31)] as char);
    }
    Ok(code)
}

fn base32(bytes: &[u8]) -> String {
    let mut out = String::new();
    let mut buffer = 0u32;
    let mut bits = 0;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(
                RECOVERY_ALPHABET[((buffer >> bits) & 31) as usize].to_ascii_uppercase() as char,
            );
        }
    }
    if bits > 0 {
        out.push(
            RECOVERY_ALPHABET[((buffer << (5 - bits)) & 31) as usize].to_ascii_uppercase() as char,
        );
    }
    out
}

/// `amr` as stored on a session: space-separated.
pub(crate) fn amr_text(amr: &[&str]) -> Option<String> {
    (!amr.is_empty()).then(|| amr.join(" "))
}

/// A session's `amr` values.
pub(crate) fn session_amr(session: &SessionRow) -> Vec<String> {
    session
        .amr
        .as_deref()
        .map(|text| text.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Serializes changes to one user's second factors until the transaction
/// ends (a PostgreSQL advisory lock; SQLite's writers are serial already):
/// check-then-write rules (one recovery-code set, at most so many
/// passkeys) hold under parallel requests on any number of instances.
pub(crate) fn lock_second_factors(c: &mut AnyConnection, user_id: &str) -> Result<()> {
    Ok(storage::repo::lock_key(
        c,
        &format!("second factors {user_id}"),
    )?)
}

/// `before` and the methods of a step-up (`used`, whose `pwd` counts only
/// when the step-up was the password itself), as stored: each value once,
/// `mfa` when a password and another factor, or `mfa` already, are in.
fn merged_amr(before: &[String], used: &[&str]) -> String {
    let factor_step_up = used.iter().any(|v| *v != "pwd");
    let mut all: Vec<&str> = before.iter().map(String::as_str).collect();
    for value in used {
        if (*value == "pwd" && factor_step_up) || all.contains(value) {
            continue;
        }
        all.push(value);
    }
    let two_kinds = all.contains(&"pwd")
        && all
            .iter()
            .any(|v| auth_core::SECOND_FACTOR_AMR.contains(v) && *v != "mfa");
    if two_kinds && !all.contains(&"mfa") {
        all.push("mfa");
    }
    all.join(" ")
}

fn amr_has_second_factor(amr: &[String]) -> bool {
    amr.iter()
        .any(|v| auth_core::SECOND_FACTOR_AMR.contains(&v.as_str()))
}

const TOTP_AMR: [&str; 3] = ["pwd", "otp", "mfa"];

impl Accounts {
    /// The mfa policy in force.
    pub fn mfa_policy(&self) -> &crate::mfa::MfaPolicy {
        &self.mfa
    }

    /// Whether a token's user must enrol a second factor before anything
    /// else: a role of [`MfaPolicy::required_roles`] and no second factor
    /// in the token's authentication. Front-ends answer
    /// [`AccountsError::MfaEnrollmentRequired`] to everything but the
    /// enrolment itself then.
    pub fn must_enrol(&self, claims: &AccessClaims) -> bool {
        !claims.has_second_factor()
            && claims
                .roles
                .iter()
                .any(|role| self.mfa.required_roles.contains(role))
    }

    /// [`must_enrol`](Self::must_enrol) for a browser session (roles read
    /// from the database).
    pub fn session_must_enrol(&self, user_id: &str, session_id: &str) -> Result<bool> {
        if self.mfa.required_roles.is_empty() {
            return Ok(false);
        }
        let mut conn = self.conn()?;
        let session =
            sessions::find(&mut conn, session_id)?.ok_or(AccountsError::SessionNotFound)?;
        if amr_has_second_factor(&session_amr(&session)) {
            return Ok(false);
        }
        let roles = users::roles(&mut conn, user_id)?;
        Ok(roles.iter().any(|r| self.mfa.required_roles.contains(r)))
    }

    /// The user's second factors.
    pub fn mfa_status(&self, user_id: &str) -> Result<MfaStatus> {
        let mut conn = self.conn()?;
        let totp = mfa::totp(&mut conn, user_id)?.is_some_and(|t| t.confirmed_at.is_some());
        let recovery_codes_left = mfa::recovery_codes_left(&mut conn, user_id)?;
        let passkeys = storage::repo::passkeys::for_user(&mut conn, user_id)?
            .iter()
            .map(crate::passkeys::PasskeySummary::from)
            .collect();
        Ok(MfaStatus {
            totp,
            recovery_codes_left,
            passkeys,
        })
    }

    /// The methods that can answer a second step for this user (none: the
    /// password alone logs in).
    pub(crate) fn second_factors_in(
        &self,
        c: &mut AnyConnection,
        user_id: &str,
    ) -> Result<Vec<MfaMethod>> {
        let mut methods = Vec::new();
        if mfa::totp(c, user_id)?.is_some_and(|t| t.confirmed_at.is_some()) {
            methods.push(MfaMethod::Totp);
        }
        // Counted even where this instance has no relying party (a public
        // URL that is an IP address): the user then can't finish with a
        // passkey here, but the password alone must never be let in.
        if storage::repo::passkeys::count_for_user(c, user_id)? > 0 {
            methods.push(MfaMethod::Webauthn);
        }
        if !methods.is_empty() && mfa::recovery_codes_left(c, user_id)? > 0 {
            methods.push(MfaMethod::RecoveryCode);
        }
        Ok(methods)
    }

    /// After a right password: the second step, if the user has a second
    /// factor. `Ok(None)`: none, log in.
    pub(crate) fn challenge_if_needed(&self, user: &UserRow) -> Result<Option<MfaChallenge>> {
        let mut conn = self.conn()?;
        let methods = self.second_factors_in(&mut conn, &user.id)?;
        if methods.is_empty() {
            return Ok(None);
        }
        let token = crate::secrets::new_opaque_token();
        let at = now();
        mfa::insert_challenge(
            &mut conn,
            &MfaChallengeRow {
                token_hash: crate::secrets::token_hash(token.expose_secret()),
                user_id: user.id.clone(),
                created_at: at.naive_utc(),
                expires_at: (at + TimeDelta::seconds(MFA_TOKEN_TTL_SECS)).naive_utc(),
                failures: 0,
                used_at: None,
            },
        )?;
        Ok(Some(MfaChallenge {
            mfa_token: token,
            methods,
        }))
    }

    /// Checks a second factor of `user` inside a write transaction and
    /// spends it (a TOTP time step, a recovery code). `Ok(Some(amr))` when
    /// right; `Ok(None)` when wrong (nothing spent). Audits the use of a
    /// recovery code.
    fn spend_factor(
        &self,
        c: &mut AnyConnection,
        user_id: &str,
        factor: SecondFactor<'_>,
        context: &AuditContext,
        at: DateTime<Utc>,
    ) -> Result<Option<Vec<&'static str>>> {
        match factor {
            SecondFactor::Totp(code) => {
                let Some(row) = mfa::totp(c, user_id)?.filter(|t| t.confirmed_at.is_some()) else {
                    return Ok(None);
                };
                let Some(secret) = self.open_totp_secret(&row) else {
                    return Ok(None);
                };
                let Some(step) = matching_step(&totp(secret, TOTP_DIGITS), code, at.timestamp())
                else {
                    return Ok(None);
                };
                // Replay (this step or an older one used already): wrong.
                Ok(mfa::use_totp_step(c, user_id, step)?.then(|| TOTP_AMR.to_vec()))
            }
            SecondFactor::RecoveryCode(code) => {
                let hash = self
                    .code_key
                    .recovery_tag(user_id, &normalise_recovery_code(code));
                if !mfa::use_recovery_code(c, user_id, &hash, at.naive_utc())? {
                    return Ok(None);
                }
                let left = mfa::recovery_codes_left(c, user_id)?;
                AuditEvent::new(events::RECOVERY_CODE_USED)
                    .subject(user_id)
                    .detail("left", left)
                    .record(c, context)?;
                Ok(Some(vec!["pwd", "otp", "mfa"]))
            }
            SecondFactor::Passkey(assertion) => {
                let found = self.spend_passkey(c, Some(user_id), assertion, at)?;
                Ok(found.map(|(_, amr)| {
                    let mut all = vec!["pwd"];
                    all.extend(amr);
                    all
                }))
            }
        }
    }

    fn open_totp_secret(&self, row: &TotpRow) -> Option<Vec<u8>> {
        self.sealing_key
            .open(&format!("totp:{}", row.user_id), &row.secret_sealed)
    }

    /// The account's budget of second-factor attempts: one event now, or
    /// [`AccountsError::Throttled`].
    fn admit_mfa_attempt(&self, user_id: &str) -> Result<()> {
        let subject = format!("user {user_id}");
        self.limited(
            "mfa",
            self.throttle
                .take(&[(Limit::MfaAttemptsPerAccount, subject.as_str())]),
        )
    }

    fn give_back_mfa_attempt(&self, user_id: &str) {
        let subject = format!("user {user_id}");
        if let Err(e) = self
            .throttle
            .refund(&[(Limit::MfaAttemptsPerAccount, subject.as_str())])
        {
            tracing::warn!(error = %e, "could not give back a second-factor attempt");
        }
    }

    /// The login's second step: the `mfa_token` from
    /// [`AccountsError::MfaRequired`] and a second factor → a session whose
    /// tokens say `amr: ["pwd","otp","mfa"]`.
    ///
    /// A wrong code answers [`AccountsError::InvalidSecondFactor`] and counts
    /// against the token (dead after [`MAX_WRONG_CODES`]: then, and for an
    /// unknown, used or expired token, [`AccountsError::InvalidMfaToken`])
    /// and against the account's attempt budget (429 before any check once
    /// spent). Wrong codes are audited.
    pub fn verify_mfa(
        &self,
        mfa_token: &SecretString,
        factor: SecondFactor<'_>,
        client: &ClientInfo,
    ) -> Result<IssuedTokens> {
        let hash = crate::secrets::token_hash(mfa_token.expose_secret());
        let context = AuditContext::from(client);
        let challenge = {
            let mut conn = self.conn()?;
            mfa::challenge(&mut conn, &hash)?.ok_or(AccountsError::InvalidMfaToken)?
        };
        let user_id = challenge.user_id;
        // Every attempt on a known token counts, before its state is read:
        // of many parallel attempts exactly the budget gets further.
        self.admit_mfa_attempt(&user_id)?;
        let amr = self.transact(|c, at| {
            if mfa::live_challenge(c, &hash, MAX_WRONG_CODES, at.naive_utc())?.is_none() {
                return Ok(Err(AccountsError::InvalidMfaToken));
            }
            let Some(amr) = self.spend_factor(c, &user_id, factor, &context, at)? else {
                // Counted only while the token lives (a parallel request
                // may have killed it since it was read above).
                if !mfa::fail_challenge(c, &hash, MAX_WRONG_CODES, at.naive_utc())? {
                    return Ok(Err(AccountsError::InvalidMfaToken));
                }
                AuditEvent::new(events::MFA_FAILED)
                    .subject(&user_id)
                    .detail("method", method_of(factor).as_str())
                    .detail("step", "login")
                    .record(c, &context)?;
                return Ok(Err(wrong(factor)));
            };
            if !mfa::claim_challenge(c, &hash, MAX_WRONG_CODES, at.naive_utc())? {
                // Spent or killed meanwhile: roll back the factor's use too.
                return Err(AccountsError::InvalidMfaToken);
            }
            Ok(Ok(amr))
        })?;
        self.give_back_mfa_attempt(&user_id);
        self.session_after_factors(&user_id, &amr, client, AccountsError::InvalidMfaToken)
    }

    /// The session that an authentication with factors `amr` earned, if
    /// the account is still active (else `refused`); audited as a login.
    pub(crate) fn session_after_factors(
        &self,
        user_id: &str,
        amr: &[&str],
        client: &ClientInfo,
        refused: AccountsError,
    ) -> Result<IssuedTokens> {
        let user = {
            let mut conn = self.conn()?;
            users::find_by_id(&mut conn, user_id)?
        }
        .filter(|u| UserStatus::parse(&u.status) == Some(UserStatus::Active))
        .ok_or(refused)?;
        let tokens = self.start_session(&user, client, None, amr)?;
        self.audit(
            AuditEvent::new(events::LOGIN_SUCCEEDED)
                .subject(&user.id)
                .organization(user.organization_id.clone())
                .detail("session_id", &tokens.claims.sid)
                .detail("amr", amr.join(" ")),
            &AuditContext::from(client),
        )?;
        Ok(tokens)
    }

    /// Starts (or restarts) a TOTP enrolment: a new secret, pending until
    /// [`confirm_totp`](Self::confirm_totp). A sensitive operation
    /// ([`check_step_up`](Self::check_step_up)).
    pub fn begin_totp(&self, user_id: &str, session_id: &str) -> Result<TotpEnrolment> {
        self.check_step_up(user_id, session_id)?;
        let secret = random_bytes::<TOTP_SECRET_BYTES>()?;
        let at = now();
        let mut conn = self.conn()?;
        let user = users::find_by_id(&mut conn, user_id)?.ok_or(AccountsError::UserNotFound)?;
        let row = TotpRow {
            user_id: user_id.to_owned(),
            secret_sealed: self.sealing_key.seal(&format!("totp:{user_id}"), &secret),
            created_at: at.naive_utc(),
            confirmed_at: None,
            last_used_step: None,
        };
        let stored = conn.transaction(|c| {
            storage::repo::write_lock(c)?;
            mfa::put_pending_totp(c, &row)
        })?;
        if !stored {
            return Err(AccountsError::AlreadyEnrolled);
        }
        let encoded = base32(&secret);
        let account = user.username.clone().unwrap_or_else(|| user.email.clone());
        let issuer = crate::flows::query_value(&self.mfa.issuer);
        let uri = format!(
            "otpauth://totp/{issuer}:{}?secret={encoded}&issuer={issuer}&algorithm=SHA1&digits={TOTP_DIGITS}&period={TOTP_STEP_SECS}",
            crate::flows::query_value(&account),
        );
        Ok(TotpEnrolment {
            secret: SecretString::from(encoded),
            otpauth_uri: SecretString::from(uri),
        })
    }

    /// Confirms the pending TOTP secret with a first code: it becomes the
    /// user's second factor, a new set of recovery codes is returned (the
    /// only time they are shown), and this session counts as authenticated
    /// with it (`amr` gains `otp`, `mfa`; `auth_time` now). A wrong code
    /// counts against the account's attempt budget and is audited.
    pub fn confirm_totp(
        &self,
        user_id: &str,
        session_id: &str,
        code: &str,
        client: &ClientInfo,
    ) -> Result<Vec<SecretString>> {
        let context = AuditContext {
            actor: Some(user_id.to_owned()),
            ..AuditContext::from(client)
        };
        self.admit_mfa_attempt(user_id)?;
        let codes = self.transact(|c, at| {
            let Some(row) = mfa::totp(c, user_id)?.filter(|t| t.confirmed_at.is_none()) else {
                return Ok(Err(AccountsError::InvalidSecondFactor));
            };
            let step = self
                .open_totp_secret(&row)
                .and_then(|secret| matching_step(&totp(secret, TOTP_DIGITS), code, at.timestamp()));
            let Some(step) = step else {
                AuditEvent::new(events::MFA_FAILED)
                    .subject(user_id)
                    .detail("method", "totp")
                    .detail("step", "enrolment")
                    .record(c, &context)?;
                return Ok(Err(AccountsError::InvalidSecondFactor));
            };
            if !mfa::confirm_totp(c, user_id, step, at.naive_utc())? {
                return Ok(Err(AccountsError::InvalidSecondFactor));
            }
            let codes = self.new_recovery_codes_in(c, user_id, at)?;
            sessions::set_authentication(c, session_id, &TOTP_AMR.join(" "), at.naive_utc())?;
            AuditEvent::new(events::MFA_ENROLLED)
                .subject(user_id)
                .detail("method", "totp")
                .record(c, &context)?;
            Ok(Ok(codes))
        })?;
        self.give_back_mfa_attempt(user_id);
        Ok(codes)
    }

    fn new_recovery_codes_in(
        &self,
        c: &mut AnyConnection,
        user_id: &str,
        at: DateTime<Utc>,
    ) -> Result<Vec<SecretString>> {
        // One new set at a time per user (parallel regenerations on
        // PostgreSQL would each delete the old rows and leave several sets).
        lock_second_factors(c, user_id)?;
        let codes = (0..RECOVERY_CODE_COUNT)
            .map(|_| new_recovery_code())
            .collect::<Result<Vec<_>>>()?;
        let hashes: Vec<String> = codes
            .iter()
            .map(|code| {
                self.code_key
                    .recovery_tag(user_id, &normalise_recovery_code(code))
            })
            .collect();
        mfa::replace_recovery_codes(c, user_id, &hashes, at.naive_utc())?;
        Ok(codes.into_iter().map(SecretString::from).collect())
    }

    /// A new set of recovery codes; the old set dies. Sensitive (step-up).
    pub fn regenerate_recovery_codes(
        &self,
        user_id: &str,
        session_id: &str,
        client: &ClientInfo,
    ) -> Result<Vec<SecretString>> {
        self.check_step_up(user_id, session_id)?;
        let context = AuditContext {
            actor: Some(user_id.to_owned()),
            ..AuditContext::from(client)
        };
        self.transact(|c, at| {
            if self.second_factors_in(c, user_id)?.is_empty() {
                return Ok(Err(AccountsError::NotEnrolled));
            }
            let codes = self.new_recovery_codes_in(c, user_id, at)?;
            AuditEvent::new(events::RECOVERY_CODES_REGENERATED)
                .subject(user_id)
                .record(c, &context)?;
            Ok(Ok(codes))
        })
    }

    /// Removes the TOTP authenticator (and, with no second factor left,
    /// the recovery codes). Sensitive (step-up).
    pub fn remove_totp(&self, user_id: &str, session_id: &str, client: &ClientInfo) -> Result<()> {
        self.check_step_up(user_id, session_id)?;
        let context = AuditContext {
            actor: Some(user_id.to_owned()),
            ..AuditContext::from(client)
        };
        self.transact(|c, _| {
            if !mfa::delete_totp(c, user_id)? {
                return Ok(Ok(()));
            }
            if self.second_factors_in(c, user_id)?.is_empty() {
                mfa::delete_recovery_codes(c, user_id)?;
            }
            AuditEvent::new(events::MFA_REMOVED)
                .subject(user_id)
                .detail("method", "totp")
                .record(c, &context)?;
            Ok(Ok(()))
        })
    }

    /// Refuses a sensitive operation ([`AccountsError::StepUpRequired`])
    /// unless the session authenticated within
    /// [`MfaPolicy::step_up_max_age_secs`] and — for a user with a second
    /// factor — with it.
    pub fn check_step_up(&self, user_id: &str, session_id: &str) -> Result<()> {
        let mut conn = self.conn()?;
        let session = sessions::find(&mut conn, session_id)?
            .filter(|s| s.user_id == user_id && s.revoked_at.is_none())
            .ok_or(AccountsError::StepUpRequired)?;
        let auth_time = session.auth_time.unwrap_or(session.created_at);
        if now().naive_utc() - auth_time > TimeDelta::seconds(self.mfa.step_up_max_age_secs) {
            return Err(AccountsError::StepUpRequired);
        }
        if !amr_has_second_factor(&session_amr(&session))
            && !self.second_factors_in(&mut conn, user_id)?.is_empty()
        {
            return Err(AccountsError::StepUpRequired);
        }
        Ok(())
    }

    /// Refuses ([`AccountsError::SessionNotFound`]) unless the session is
    /// the user's and neither revoked nor expired.
    pub(crate) fn check_session_alive(&self, user_id: &str, session_id: &str) -> Result<()> {
        let mut conn = self.conn()?;
        sessions::find(&mut conn, session_id)?
            .filter(|s| s.user_id == user_id && s.revoked_at.is_none())
            .filter(|s| s.expires_at > now().naive_utc())
            .map(|_| ())
            .ok_or(AccountsError::SessionNotFound)
    }

    /// Authenticates again inside a session (after
    /// [`AccountsError::StepUpRequired`]): with the second factor if the
    /// user has one, else the password. The session's `amr` and
    /// `auth_time` are renewed, and a new access token saying so is
    /// returned (refreshes carry them on too).
    pub fn step_up(
        &self,
        user_id: &str,
        session_id: &str,
        proof: StepUpProof<'_>,
        client: &ClientInfo,
    ) -> Result<IssuedAccess> {
        let context = AuditContext {
            actor: Some(user_id.to_owned()),
            ..AuditContext::from(client)
        };
        let (user, has_factor) = {
            let mut conn = self.conn()?;
            let user = users::find_by_id(&mut conn, user_id)?.ok_or(AccountsError::UserNotFound)?;
            let has_factor = !self.second_factors_in(&mut conn, user_id)?.is_empty();
            (user, has_factor)
        };
        let amr: Vec<&'static str> = match proof {
            StepUpProof::Password(password) => {
                if has_factor {
                    return Err(AccountsError::StepUpRequired);
                }
                // The same per-account budget as logins and password
                // changes: one guess_password step for all three.
                let subject = format!("user {user_id}");
                let limits = [(Limit::LoginFailuresPerAccount, subject.as_str())];
                let verified =
                    self.guess_password(&limits, || match user.password_hash.as_deref() {
                        Some(hash) => self.hasher.verify(password.expose_secret(), hash),
                        None => Ok(false),
                    })?;
                if !verified {
                    self.audit(
                        AuditEvent::new(events::LOGIN_FAILED)
                            .subject(user_id)
                            .detail("reason", "step_up"),
                        &context,
                    )?;
                    return Err(AccountsError::InvalidCredentials);
                }
                vec!["pwd"]
            }
            StepUpProof::Factor(factor) => {
                if !has_factor {
                    return Err(AccountsError::NotEnrolled);
                }
                self.admit_mfa_attempt(user_id)?;
                let amr = self.transact(|c, at| {
                    match self.spend_factor(c, user_id, factor, &context, at)? {
                        Some(amr) => Ok(Ok(amr)),
                        None => {
                            AuditEvent::new(events::MFA_FAILED)
                                .subject(user_id)
                                .detail("method", method_of(factor).as_str())
                                .detail("step", "step_up")
                                .record(c, &context)?;
                            Ok(Err(wrong(factor)))
                        }
                    }
                })?;
                self.give_back_mfa_attempt(user_id);
                amr
            }
        };
        let at = now();
        let mut conn = self.conn()?;
        let session = conn.transaction(|c| {
            storage::repo::write_lock(c)?;
            // The methods this session has now been authenticated with:
            // those it had, and the one just used — never a password that
            // wasn't typed (a passkey session stepping up with its app).
            let before = sessions::find(c, session_id)?
                .map(|s| session_amr(&s))
                .unwrap_or_default();
            let amr = merged_amr(&before, &amr);
            if !sessions::set_authentication(c, session_id, &amr, at.naive_utc())? {
                return Err(AccountsError::SessionNotFound);
            }
            AuditEvent::new(events::STEP_UP)
                .subject(user_id)
                .detail("session_id", session_id)
                .detail("amr", amr)
                .record(c, &context)?;
            sessions::find(c, session_id)?.ok_or(AccountsError::SessionNotFound)
        })?;
        if session.user_id != user_id {
            return Err(AccountsError::SessionNotFound);
        }
        let (roles, perms) = users::roles_and_permissions(&mut conn, user_id)?;
        let claims = self.claims_for(&user, &session, roles, perms, at);
        let access_token = self.keys().sign(ACCESS_TOKEN_TYP, &claims)?;
        Ok(IssuedAccess {
            access_token,
            claims,
        })
    }

    /// Operator's reset (`auth-server user mfa reset`): removes every
    /// second factor of the user, ends its pending second steps and its
    /// sessions, and audits it.
    pub fn reset_mfa(
        &self,
        email: &EmailAddress,
        context: &AuditContext,
    ) -> Result<Vec<RevokedSession>> {
        let at = now();
        let mut conn = self.conn()?;
        let revoked = conn.transaction(|c| {
            storage::repo::write_lock(c)?;
            let user =
                users::find_by_email(c, email.as_str())?.ok_or(AccountsError::UserNotFound)?;
            let totp = mfa::delete_totp(c, &user.id)?;
            let codes = mfa::delete_recovery_codes(c, &user.id)?;
            let passkeys = storage::repo::passkeys::delete_for_user(c, &user.id)?;
            mfa::delete_challenges_for_user(c, &user.id)?;
            let revoked = self.revoke_sessions_in(c, &user.id, None, "mfa_reset", at)?;
            AuditEvent::new(events::MFA_RESET)
                .subject(&user.id)
                .organization(user.organization_id.clone())
                .detail("totp", totp)
                .detail("recovery_codes", codes)
                .detail("passkeys", passkeys)
                .detail("sessions", revoked.len())
                .record(c, context)?;
            Ok::<_, AccountsError>(revoked)
        })?;
        Ok(self.published(revoked))
    }

    /// Forgets second steps and passkey ceremonies that expired over an
    /// hour ago (background clean-up).
    pub fn forget_expired_mfa_challenges(&self) -> Result<usize> {
        let before = (now() - TimeDelta::hours(1)).naive_utc();
        let mut conn = self.conn()?;
        Ok(mfa::delete_expired_challenges(&mut conn, before)?
            + storage::repo::passkeys::delete_expired_ceremonies(&mut conn, before)?)
    }
}

fn method_of(factor: SecondFactor<'_>) -> MfaMethod {
    match factor {
        SecondFactor::Totp(_) => MfaMethod::Totp,
        SecondFactor::RecoveryCode(_) => MfaMethod::RecoveryCode,
        SecondFactor::Passkey(_) => MfaMethod::Webauthn,
    }
}

/// What a second factor that didn't fit is answered.
fn wrong(factor: SecondFactor<'_>) -> AccountsError {
    match factor {
        SecondFactor::Passkey(_) => AccountsError::InvalidPasskey,
        SecondFactor::Totp(_) | SecondFactor::RecoveryCode(_) => AccountsError::InvalidSecondFactor,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1, eight digits.
    #[test]
    fn rfc_6238_vectors() {
        let generator = totp(b"12345678901234567890".to_vec(), 8);
        for (time, code) in [
            (59_u64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(generator.generate(time), code, "T = {time}");
            let step = (time / TOTP_STEP_SECS) as i64;
            assert_eq!(matching_step(&generator, code, time as i64), Some(step));
        }
    }

    #[test]
    fn one_step_of_drift_either_way_and_no_more() {
        let generator = totp(vec![7; 20], 6);
        let now = 1_700_000_000_i64;
        let step = now / 30;
        let code_at = |s: i64| generator.generate((s * 30) as u64);
        assert_eq!(matching_step(&generator, &code_at(step), now), Some(step));
        assert_eq!(
            matching_step(&generator, &code_at(step - 1), now),
            Some(step - 1)
        );
        assert_eq!(
            matching_step(&generator, &code_at(step + 1), now),
            Some(step + 1)
        );
        for far in [step - 2, step + 2] {
            let code = code_at(far);
            // (A far code may collide with a near one by chance: 3 in 10^6.)
            if [step - 1, step, step + 1]
                .iter()
                .all(|s| code_at(*s) != code)
            {
                assert_eq!(matching_step(&generator, &code, now), None);
            }
        }
        assert_eq!(matching_step(&generator, "12345", now), None);
        assert_eq!(matching_step(&generator, "12345a", now), None);
        assert_eq!(matching_step(&generator, "", now), None);
    }

    #[test]
    fn a_step_up_adds_what_was_used_and_invents_nothing() {
        let owned = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        // A password session stepping up with its app.
        assert_eq!(merged_amr(&owned(&["pwd"]), &TOTP_AMR), "pwd otp mfa");
        // A passkey session stepping up with the app: no password appears.
        assert_eq!(
            merged_amr(&owned(&["hwk", "user", "mfa"]), &TOTP_AMR),
            "hwk user mfa otp"
        );
        // A password step-up of a password session.
        assert_eq!(merged_amr(&owned(&["pwd"]), &["pwd"]), "pwd");
        assert_eq!(merged_amr(&[], &["pwd"]), "pwd");
    }

    #[test]
    fn base32_matches_rfc_4648() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(b"fooba"), "MZXW6YTB");
        assert_eq!(base32(b"f"), "MY");
    }

    #[test]
    fn recovery_codes_normalise() {
        let code = new_recovery_code().unwrap();
        assert_eq!(code.len(), 11);
        assert_eq!(
            normalise_recovery_code(&code.to_uppercase().replace('-', " - ")),
            code.replace('-', "")
        );
    }
}

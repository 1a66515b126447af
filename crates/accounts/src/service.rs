//! The account operations. Every method blocks (database, Argon2): call them
//! from a blocking thread pool.

use std::sync::Arc;

use auth_core::{
    ACCESS_TOKEN_TYP, AccessClaims, KeySet, RevocationKind, Subject, TokenPolicy, Verifier,
};
use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use diesel::prelude::*;
use mailer::Locale;
use secrecy::{ExposeSecret, SecretString};
use storage::models::{NewRevocation, NewUser, RefreshTokenRow, SessionRow, UserRow};
use storage::repo::{refresh_tokens, revocations, sessions, users};
use storage::{AnyConnection, DbPool, StorageError};
use uuid::Uuid;

use crate::audit::{AuditContext, AuditEvent, events};
use crate::codes::CodeKey;
use crate::error::AccountsError;
use crate::mfa::MfaPolicy;
use crate::password::PasswordHasher;
use crate::permissions::PermissionCatalog;
use crate::secrets::{SealingKey, new_opaque_token, token_hash};
use crate::throttle::{Limit, Throttle, ThrottleRates};
use crate::types::{DisplayName, EmailAddress, LoginId, Password, UserStatus, Username};

type Result<T> = std::result::Result<T, AccountsError>;

/// How long sessions and refresh tokens live.
#[derive(Clone, Debug)]
pub struct SessionPolicy {
    /// A refresh token not used within this many seconds expires (default 4 h).
    pub refresh_idle_ttl_secs: i64,
    /// A session ends this long after login, however active (default 30 days).
    pub absolute_ttl_secs: i64,
    /// A rotated-out refresh token presented again within this many seconds of
    /// its first use is treated as a client's duplicate request, not as theft
    /// (default 10 s).
    pub reuse_grace_secs: i64,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            refresh_idle_ttl_secs: 14_400,
            absolute_ttl_secs: 30 * 24 * 3600,
            reuse_grace_secs: 10,
        }
    }
}

/// Whose sessions a refresh token may rotate in: the native API's and the
/// pages' own, those started for a registered client's users (whose tokens
/// only that client's profile hands out), or those a relying party holds
/// (OpenID Connect; only that client's token requests rotate them). A token
/// is never accepted on another channel, so nothing a client or a relying
/// party holds works natively.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Channel {
    Native,
    Client,
    /// The relying party with this `client_id`.
    RelyingParty(String),
}

impl Channel {
    pub(crate) fn admits(&self, session: &SessionRow) -> bool {
        match self {
            Channel::Native => session.client_id.is_none(),
            Channel::Client => session.client_id.is_some() && session.scope.is_none(),
            Channel::RelyingParty(client_id) => {
                session.client_id.as_deref() == Some(client_id.as_str()) && session.scope.is_some()
            }
        }
    }
}

/// What monitoring reads ([`Accounts::health`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Health {
    pub outbox: Option<OutboxCounts>,
    pub pool_connections: u32,
    pub pool_idle: u32,
    pub pool_max: u32,
}

/// Mail not sent yet: waiting (or retrying), and given up on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutboxCounts {
    pub pending: i64,
    pub dead: i64,
}

/// Who is calling, recorded on the session.
#[derive(Clone, Debug, Default)]
pub struct ClientInfo {
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

impl From<&ClientInfo> for AuditContext {
    fn from(client: &ClientInfo) -> Self {
        AuditContext {
            actor: None,
            ip: client.ip.clone(),
            user_agent: client.user_agent.clone(),
        }
    }
}

/// What login, refresh and activation hand back.
#[derive(Debug)]
pub struct IssuedTokens {
    pub access_token: String,
    pub claims: AccessClaims,
    pub refresh_token: SecretString,
    pub refresh_expires_in: i64,
    /// The user must set a new password: an administrator asked for it, or
    /// the password is older than the configured maximum age.
    pub password_change_due: bool,
}

/// An access token alone (renewal without a refresh token).
#[derive(Debug)]
pub struct IssuedAccess {
    pub access_token: String,
    pub claims: AccessClaims,
}

/// A session that was just revoked, and until when its access tokens could
/// otherwise still be valid (unix seconds): the revocation must be remembered
/// until then.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokedSession {
    pub session_id: String,
    pub until: i64,
}

/// A user to create.
#[derive(Debug)]
pub struct NewAccount {
    pub email: EmailAddress,
    pub username: Option<Username>,
    pub name: Option<DisplayName>,
    pub password: Option<Password>,
    pub status: UserStatus,
    pub roles: Vec<String>,
    pub organization_id: Option<String>,
    pub locale: Option<Locale>,
}

/// Settings of the account flows beyond tokens and sessions.
pub struct AccountsConfig {
    pub tokens: TokenPolicy,
    pub sessions: SessionPolicy,
    /// Key for the HMAC tags of email codes (32 random bytes, kept secret).
    pub code_key: CodeKey,
    /// Seals values handed out that only we may read (the refresh
    /// credential inside a client's refresh token).
    pub sealing_key: SealingKey,
    /// Base URL of the web pages linked from mails (no trailing slash).
    pub public_url: String,
    /// Answer 409 `email_taken` to a signup with a registered address,
    /// instead of the default that reveals nothing.
    pub reveal_email_taken: bool,
    /// Called after a transaction that queued mail has committed, so the
    /// delivery worker can start at once.
    pub on_mail_queued: Arc<dyn Fn() + Send + Sync>,
    /// Every permission that can be granted.
    pub catalog: PermissionCatalog,
    /// Longest lifetime of a personal API token.
    pub api_token_max_days: i64,
    /// Who is told about new registrations.
    pub operator_emails: Vec<EmailAddress>,
    /// Passwords older than this must be changed (reported at login).
    pub password_max_age_days: Option<i64>,
    /// Key for the rate limits' row keys (32 random bytes, kept secret; the
    /// same on every instance sharing the database).
    pub throttle_key: Vec<u8>,
    pub throttle_rates: ThrottleRates,
    /// Called with the kind (`login`, `mail`, `code`) whenever a rate limit
    /// refuses a request, for metrics.
    pub on_throttled: Arc<dyn Fn(&'static str) + Send + Sync>,
    /// Second factors: who must have one, how recent sensitive operations
    /// need the authentication.
    pub mfa: MfaPolicy,
}

impl Default for AccountsConfig {
    /// Working defaults for one process: the native token and session
    /// policies, the default permission catalog and rate limits, no mail
    /// hooks, and fresh random secrets. Instances that share a database
    /// must share `code_key`, `sealing_key` and `throttle_key` (the server
    /// keeps them in its key folder).
    fn default() -> Self {
        let random = || {
            let mut bytes = [0u8; 32];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
                .expect("the operating system's random source failed");
            bytes
        };
        AccountsConfig {
            tokens: TokenPolicy::default(),
            sessions: SessionPolicy::default(),
            code_key: CodeKey::new(&random()),
            sealing_key: SealingKey::new(random()),
            public_url: "http://127.0.0.1:8080".to_owned(),
            reveal_email_taken: false,
            on_mail_queued: Arc::new(|| {}),
            catalog: PermissionCatalog::default(),
            api_token_max_days: 365,
            operator_emails: Vec::new(),
            password_max_age_days: None,
            throttle_key: random().to_vec(),
            throttle_rates: ThrottleRates::default(),
            on_throttled: Arc::new(|_| {}),
            mfa: MfaPolicy::default(),
        }
    }
}

pub struct Accounts {
    pub(crate) pool: DbPool,
    pub(crate) hasher: Arc<PasswordHasher>,
    /// Keys (replaced whole on rotation, [`Accounts::replace_keys`]), the
    /// token policy, and the revoked sessions and tokens known here (see
    /// [`crate::revocations`]): every token check goes through it.
    pub(crate) verifier: Verifier<KeySet>,
    pub(crate) sessions: SessionPolicy,
    pub(crate) code_key: CodeKey,
    pub(crate) sealing_key: SealingKey,
    pub(crate) public_url: String,
    pub(crate) reveal_email_taken: bool,
    pub(crate) on_mail_queued: Arc<dyn Fn() + Send + Sync>,
    pub(crate) catalog: PermissionCatalog,
    pub(crate) api_token_max_days: i64,
    pub(crate) operator_emails: Vec<EmailAddress>,
    password_max_age_days: Option<i64>,
    pub(crate) throttle: Throttle,
    pub(crate) on_throttled: Arc<dyn Fn(&'static str) + Send + Sync>,
    pub(crate) mfa: MfaPolicy,
    /// Passkeys' relying party (`None`: the public URL can't be one).
    pub(crate) relying_party: Option<Arc<crate::passkeys::RelyingParty>>,
    /// API token id → last use, not yet written (see `note_api_token_use`).
    pub(crate) api_token_uses:
        std::sync::Mutex<std::collections::HashMap<String, chrono::NaiveDateTime>>,
    /// Refresh-token rotations waiting to be written together
    /// ([`crate::rotation`]).
    pub(crate) rotations: crate::rotation::Rotations,
    /// Where the keys come from (`None`: the key set given is all there
    /// is): re-read by the key reload, and where a key a client needs is
    /// made ([`Accounts::keys_signing`]).
    pub(crate) key_source: Option<crate::keys::KeySource>,
}

/// Current time, truncated to microseconds: PostgreSQL keeps no more, and
/// values read back must equal values written.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

impl Accounts {
    pub fn new(
        pool: DbPool,
        hasher: Arc<PasswordHasher>,
        keys: KeySet,
        config: AccountsConfig,
    ) -> Self {
        let relying_party =
            crate::passkeys::RelyingParty::for_public_url(&config.public_url, &config.mfa.issuer)
                .map(Arc::new);
        Self {
            relying_party,
            hasher,
            verifier: Verifier::new(config.tokens, keys),
            sessions: config.sessions,
            code_key: config.code_key,
            sealing_key: config.sealing_key,
            public_url: config.public_url,
            reveal_email_taken: config.reveal_email_taken,
            on_mail_queued: config.on_mail_queued,
            catalog: config.catalog,
            api_token_max_days: config.api_token_max_days,
            operator_emails: config.operator_emails,
            password_max_age_days: config.password_max_age_days,
            throttle: Throttle::new(pool.clone(), &config.throttle_key, config.throttle_rates),
            on_throttled: config.on_throttled,
            mfa: config.mfa,
            api_token_uses: Default::default(),
            rotations: crate::rotation::Rotations::default(),
            key_source: None,
            pool,
        }
    }

    /// Names the store the keys came from: the background key reload
    /// re-reads it, and keys that clients need (RS256 ID tokens) are made
    /// in it.
    pub fn with_key_source(mut self, source: crate::keys::KeySource) -> Self {
        self.key_source = Some(source);
        self
    }

    pub fn key_source(&self) -> Option<&crate::keys::KeySource> {
        self.key_source.as_ref()
    }

    /// Figures for monitoring: the state of the database pool, and mail
    /// waiting in the outbox (`None` when the database can't be read: the
    /// pool figures then say why; the cause is logged).
    pub fn health(&self) -> Health {
        let pool = self.pool.state();
        let outbox = self
            .conn()
            .and_then(|mut conn| Ok(storage::repo::outbox::unsent_counts(&mut conn)?))
            .map(|counts| {
                let count = |status: &str| {
                    counts
                        .iter()
                        .find(|(s, _)| s == status)
                        .map_or(0, |(_, n)| *n)
                };
                OutboxCounts {
                    pending: count(storage::repo::outbox::PENDING),
                    dead: count(storage::repo::outbox::DEAD),
                }
            })
            .inspect_err(|e| tracing::warn!(error = %e, "cannot count the outbox"))
            .ok();
        Health {
            outbox,
            pool_connections: pool.connections,
            pool_idle: pool.idle_connections,
            pool_max: self.pool.max_size(),
        }
    }

    /// The keys that sign and verify now (cheap: an `Arc` clone).
    pub fn keys(&self) -> KeySet {
        self.verifier.keys()
    }

    /// Swaps in a new key set (after `keys rotate`): new tokens are signed
    /// with its active key at once; tokens of keys it still holds verify.
    pub fn replace_keys(&self, keys: KeySet) {
        self.verifier.replace_keys(keys);
    }

    /// The one check for tokens we issued (keys, policy, revocations): every
    /// front-end verifies through it.
    pub fn verifier(&self) -> &Verifier<KeySet> {
        &self.verifier
    }

    pub(crate) fn conn(&self) -> Result<storage::DbConn> {
        Ok(self.pool.get().map_err(StorageError::from)?)
    }

    /// Creates a user; checks (by the one strength rule) and hashes the
    /// password, if any, first.
    pub fn create_user(&self, account: NewAccount) -> Result<String> {
        if let Some(password) = &account.password {
            password.check_for_account(
                account.email.as_str(),
                account.username.as_ref().map(Username::as_str),
            )?;
        }
        let hash = account
            .password
            .as_ref()
            .map(|p| self.hasher.hash(p.expose()))
            .transpose()?;
        let mut conn = self.conn()?;
        conn.transaction(|c| {
            storage::repo::write_lock(c)?;
            self.insert_user_in(c, &account, hash.as_deref(), now())
        })
    }

    /// Inserts a user after checking that the email and username are free.
    pub(crate) fn insert_user_in(
        &self,
        c: &mut AnyConnection,
        account: &NewAccount,
        password_hash: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<String> {
        if users::find_by_email(c, account.email.as_str())?.is_some() {
            return Err(AccountsError::EmailTaken);
        }
        if let Some(username) = &account.username
            && users::find_by_username(c, username.as_str())?.is_some()
        {
            return Err(AccountsError::UsernameTaken);
        }
        let id = Uuid::new_v4().to_string();
        let at = at.naive_utc();
        users::insert(
            c,
            &NewUser {
                id: &id,
                email: account.email.as_str(),
                username: account.username.as_ref().map(Username::as_str),
                name: account.name.as_ref().map(DisplayName::as_str),
                password_hash,
                status: account.status.as_str(),
                organization_id: account.organization_id.as_deref(),
                permission_version: 0,
                created_at: at,
                updated_at: at,
                locale: account.locale.map(Locale::as_str),
                must_change_password: false,
                password_changed_at: password_hash.map(|_| at),
            },
        )
        .map_err(|e| match e {
            // Lost a race with a concurrent insert of the same address.
            StorageError::UniqueViolation => AccountsError::EmailTaken,
            other => other.into(),
        })?;
        for role in &account.roles {
            users::add_role(c, &id, role)?;
        }
        Ok(id)
    }

    /// Email-or-username + password → a new session. Unknown users cost the
    /// same Argon2 work as wrong passwords and get the same error.
    ///
    /// Failed logins are limited per account and per client IP
    /// ([`Limit::LoginFailuresPerAccount`], [`Limit::LoginFailuresPerIp`]):
    /// each attempt is counted before its password is checked and given back
    /// when the password was right, so parallel guesses are cut off at the
    /// limit too; once a limit is exhausted the answer is
    /// [`AccountsError::Throttled`] before any password is checked. The account's counter is the
    /// resolved user's, whatever spelling of its email or its username was
    /// typed; a login that matches no account counts under its normalised
    /// form (so the limit says nothing about which accounts exist).
    pub fn login(
        &self,
        login: &str,
        password: &SecretString,
        client: &ClientInfo,
    ) -> Result<IssuedTokens> {
        self.login_checked(login, password, client, true)
    }

    /// [`login`](Self::login) for a front-end that has no second step (a
    /// compatibility profile the operator listed in `compat_password_only`):
    /// a user with a second factor logs in with the password alone, and the
    /// session's `amr` says only `pwd`. A risk the operator accepts: that
    /// profile's logins are as strong as the password.
    pub fn login_password_only(
        &self,
        login: &str,
        password: &SecretString,
        client: &ClientInfo,
    ) -> Result<IssuedTokens> {
        self.login_checked(login, password, client, false)
    }

    /// The account a login (email or username) names, if any.
    pub(crate) fn find_by_login(&self, login: &str) -> Result<Option<UserRow>> {
        let Some(id) = LoginId::parse(login) else {
            return Ok(None);
        };
        let mut conn = self.conn()?;
        Ok(match id {
            LoginId::Email(email) => users::find_by_email(&mut conn, email.as_str())?,
            LoginId::Username(name) => users::find_by_username(&mut conn, name.as_str())?,
        })
    }

    fn login_checked(
        &self,
        login: &str,
        password: &SecretString,
        client: &ClientInfo,
        second_step: bool,
    ) -> Result<IssuedTokens> {
        let id = LoginId::parse(login);
        let user = self.find_by_login(login)?;
        let account = match (&user, &id) {
            (Some(user), _) => format!("user {}", user.id),
            (None, Some(LoginId::Email(email))) => format!("email {email}"),
            (None, Some(LoginId::Username(name))) => format!("username {name}"),
            (None, None) => format!("unparsed {}", login.trim().to_lowercase()),
        };
        let ip = crate::throttle::ip_subject(client.ip.as_deref());
        let limits = [
            (Limit::LoginFailuresPerAccount, account.as_str()),
            (Limit::LoginFailuresPerIp, ip.as_str()),
        ];
        // Every attempt takes its place in both budgets before the password
        // is checked; an attempt that turns out right gives it back. A full
        // hashing queue answers Busy before any work or audit: no
        // credential was checked.
        let candidate = password.expose_secret();
        let verified = self.guess_password(&limits, || match &user {
            Some(user) => match user.password_hash.as_deref() {
                Some(hash) => self.hasher.verify(candidate, hash),
                // Invited users have no password yet; still spend the work.
                None => self.hasher.verify_dummy(candidate),
            },
            None => self.hasher.verify_dummy(candidate),
        })?;
        let context = AuditContext::from(client);
        let user = match user {
            Some(user) if verified => user,
            other => {
                let failed = AuditEvent::new(events::LOGIN_FAILED)
                    .detail("login", login.chars().take(320).collect::<String>());
                let failed = match other {
                    Some(user) => failed
                        .subject(&user.id)
                        .organization(user.organization_id.clone()),
                    None => failed,
                };
                self.audit(failed, &context)?;
                return Err(AccountsError::InvalidCredentials);
            }
        };
        if UserStatus::parse(&user.status) != Some(UserStatus::Active) {
            let refused = AuditEvent::new(events::LOGIN_FAILED)
                .subject(&user.id)
                .detail("reason", "account_not_active");
            self.audit(refused, &context)?;
            return Err(AccountsError::AccountNotActive);
        }
        // A second factor, if the user has one, comes next (the session
        // starts in `verify_mfa`).
        if second_step && let Some(challenge) = self.challenge_if_needed(&user)? {
            return Err(AccountsError::MfaRequired(Box::new(challenge)));
        }
        let tokens = self.start_session(&user, client, None, &["pwd"])?;
        let succeeded = AuditEvent::new(events::LOGIN_SUCCEEDED)
            .subject(&user.id)
            .organization(user.organization_id.clone())
            .detail("session_id", &tokens.claims.sid);
        self.audit(succeeded, &context)?;
        Ok(tokens)
    }

    /// A new session for `user`; `client_id` names the registered client it
    /// is started for ([`Channel::Client`]), `None` for a native one; `amr`
    /// says how the user authenticated (RFC 8176), now.
    pub(crate) fn start_session(
        &self,
        user: &UserRow,
        client: &ClientInfo,
        client_id: Option<&str>,
        amr: &[&str],
    ) -> Result<IssuedTokens> {
        let at = now();
        let session = SessionRow {
            id: Uuid::new_v4().to_string(),
            user_id: user.id.clone(),
            created_at: at.naive_utc(),
            last_used_at: at.naive_utc(),
            expires_at: (at + TimeDelta::seconds(self.sessions.absolute_ttl_secs)).naive_utc(),
            revoked_at: None,
            revoke_reason: None,
            user_agent: client.user_agent.clone(),
            ip: client.ip.clone(),
            client_id: client_id.map(str::to_owned),
            amr: crate::mfa::amr_text(amr),
            auth_time: Some(at.naive_utc()),
            scope: None,
            sso_session_id: None,
            forked_at: None,
        };
        let mut conn = self.conn()?;
        let (roles, perms) = users::roles_and_permissions(&mut conn, &user.id)?;
        let refresh = conn.transaction(|c| {
            sessions::insert(c, &session)?;
            self.new_refresh_token(c, &session, None, at)
        })?;
        self.issue(user, &session, roles, perms, refresh, at)
    }

    /// Stores a new refresh token for the session; returns it with its lifetime.
    pub(crate) fn new_refresh_token(
        &self,
        conn: &mut AnyConnection,
        session: &SessionRow,
        parent: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<(SecretString, i64)> {
        let idle_end = at.naive_utc() + TimeDelta::seconds(self.sessions.refresh_idle_ttl_secs);
        let expires_at = idle_end.min(session.expires_at);
        let token = new_opaque_token();
        refresh_tokens::insert(
            conn,
            &RefreshTokenRow {
                id: RefreshTokenRow::new_id(),
                session_id: session.id.clone(),
                token_hash: token_hash(token.expose_secret()),
                parent_id: parent.map(str::to_owned),
                created_at: at.naive_utc(),
                expires_at,
                used_at: None,
            },
        )?;
        Ok((token, (expires_at - at.naive_utc()).num_seconds()))
    }

    pub(crate) fn issue(
        &self,
        user: &UserRow,
        session: &SessionRow,
        roles: Vec<String>,
        perms: Vec<String>,
        (refresh_token, refresh_expires_in): (SecretString, i64),
        at: DateTime<Utc>,
    ) -> Result<IssuedTokens> {
        let claims = self.claims_for(user, session, roles, perms, at);
        let access_token = self.keys().sign(ACCESS_TOKEN_TYP, &claims)?;
        let too_old = |changed: chrono::NaiveDateTime| {
            self.password_max_age_days
                .is_some_and(|days| changed + TimeDelta::days(days) < at.naive_utc())
        };
        let password_change_due =
            user.must_change_password || user.password_changed_at.is_some_and(too_old);
        Ok(IssuedTokens {
            access_token,
            claims,
            refresh_token,
            refresh_expires_in,
            password_change_due,
        })
    }

    /// The access token's claims for `user` in `session`, issued `at`:
    /// roles and permissions as given, `amr` and `auth_time` as the session
    /// records them, and never valid past the session's own end (a token
    /// refreshed a minute before the session expires lives a minute, not a
    /// full access TTL beyond it).
    pub(crate) fn claims_for(
        &self,
        user: &UserRow,
        session: &SessionRow,
        roles: Vec<String>,
        perms: Vec<String>,
        at: DateTime<Utc>,
    ) -> AccessClaims {
        let mut claims = self.verifier.policy().access_claims(
            Subject {
                user_id: user.id.clone(),
                session_id: session.id.clone(),
                org: user.organization_id.clone(),
                roles,
                perms,
                pv: user.permission_version,
                email: Some(user.email.clone()),
                preferred_username: user.username.clone(),
                name: user.name.clone(),
            },
            at.timestamp(),
        );
        claims.exp = claims.exp.min(session.expires_at.and_utc().timestamp());
        claims.amr = crate::mfa::session_amr(session);
        claims.auth_time = Some(
            session
                .auth_time
                .unwrap_or(session.created_at)
                .and_utc()
                .timestamp(),
        );
        if let (Some(client_id), Some(scope)) = (&session.client_id, &session.scope) {
            crate::oidc::for_relying_party(&mut claims, client_id, scope);
        }
        claims
    }

    /// Rotates a refresh token: the presented one is spent, a new one returned,
    /// and the access token re-reads the user's current roles and permissions.
    ///
    /// Reuse: a spent token presented again within `reuse_grace_secs` of its
    /// first use gets a fresh sibling token (two racing refreshes from one
    /// client both succeed; each new token is itself single-use). Later than
    /// that, the session is revoked and [`AccountsError::RefreshTokenReused`]
    /// returned. Siblings don't make lasting chains: the first of them to be
    /// rotated spends the others, which are then reuse once their own grace
    /// window has passed.
    pub fn refresh(&self, presented: &SecretString, client: &ClientInfo) -> Result<IssuedTokens> {
        self.refresh_in_session(presented, None, client)
    }

    /// [`refresh`](Self::refresh), and when `session_id` is given the token
    /// must belong to that session; otherwise nothing is spent and the answer
    /// is [`AccountsError::InvalidRefreshToken`].
    pub fn refresh_in_session(
        &self,
        presented: &SecretString,
        session_id: Option<&str>,
        client: &ClientInfo,
    ) -> Result<IssuedTokens> {
        self.rotate(presented, session_id, Channel::Native, client)
    }

    /// [`refresh_in_session`](Self::refresh_in_session) for async callers
    /// (every front-end): waits for the group commit that writes the
    /// rotation without holding a thread, and needs no `run_blocking`.
    pub async fn refresh_in_session_async(
        self: &Arc<Self>,
        presented: &SecretString,
        session_id: Option<&str>,
        client: &ClientInfo,
    ) -> Result<IssuedTokens> {
        self.rotate_async(presented, session_id, Channel::Native, client)
            .await
    }

    /// A new access token for the session of `old` (which may have expired),
    /// if that session is still alive: not revoked, within its absolute
    /// lifetime, its user active. For seed contracts that renew access
    /// tokens without a refresh token.
    ///
    /// `old` is spent by the renewal, whether or not it has expired: its
    /// `jti` is revoked until its session's absolute end (the longest it
    /// could be presented again), so each token renews at most once — a
    /// second renewal, here or on another instance, is
    /// [`AccountsError::TokenRevoked`], as is a token whose session was
    /// revoked. The session row is locked first, so two renewals of one
    /// token racing on PostgreSQL see each other.
    ///
    /// A session past its absolute end answers as ended
    /// ([`AccountsError::InvalidRefreshToken`]) whether or not it was
    /// revoked before: that is what it answers once it is forgotten
    /// ([`crate::sessions::ENDED_SESSION_RETENTION`]), so forgetting it
    /// changes no answer.
    pub fn renew_access(&self, old: &AccessClaims) -> Result<IssuedAccess> {
        let at = now();
        let mut conn = self.conn()?;
        let (access, spent) = conn.transaction(|c| -> Result<_> {
            storage::repo::write_lock(c)?;
            // Locks the session row (PostgreSQL) before anything is read.
            sessions::touch(c, &old.sid, at.naive_utc())?;
            let Some(session) = sessions::find(c, &old.sid)?.filter(|s| s.user_id == old.sub)
            else {
                return Err(AccountsError::InvalidRefreshToken);
            };
            if session.expires_at <= at.naive_utc() {
                return Err(AccountsError::InvalidRefreshToken);
            }
            if session.revoked_at.is_some()
                || self.verifier.revocations().is_revoked(&old.sid, &old.jti)
                || revocations::exists(c, RevocationKind::Token.as_str(), &old.jti)?
            {
                return Err(AccountsError::TokenRevoked);
            }
            let user = users::find_by_id(c, &session.user_id)?;
            let Some(user) =
                user.filter(|u| UserStatus::parse(&u.status) == Some(UserStatus::Active))
            else {
                return Err(AccountsError::InvalidRefreshToken);
            };
            let (roles, perms) = users::roles_and_permissions(c, &user.id)?;
            let claims = self.claims_for(&user, &session, roles, perms, at);
            let access_token = self.keys().sign(ACCESS_TOKEN_TYP, &claims)?;
            let spent = self.record_token_revocation(c, &old.jti, session.expires_at, at)?;
            Ok((
                IssuedAccess {
                    access_token,
                    claims,
                },
                spent,
            ))
        })?;
        self.published(spent);
        Ok(access)
    }

    /// Revokes one session (logout). Returns it when it was live; `None`
    /// (and no audit event) when it had ended before.
    pub fn logout(
        &self,
        user_id: &str,
        session_id: &str,
        context: &AuditContext,
    ) -> Result<Option<RevokedSession>> {
        let at = now();
        let mut conn = self.conn()?;
        let revoked = conn.transaction(|c| {
            storage::repo::write_lock(c)?;
            let revoked = self.revoke_session_in(c, session_id, "logout", at)?;
            if !revoked.is_empty() {
                AuditEvent::new(events::LOGOUT)
                    .subject(user_id)
                    .detail("session_id", session_id)
                    .record(c, context)?;
            }
            Ok::<_, AccountsError>(revoked)
        })?;
        if revoked.is_empty() {
            // Revoked before (perhaps on another instance, not yet polled
            // here): its tokens are refused here at once all the same.
            self.published(vec![RevokedSession {
                session_id: session_id.to_owned(),
                until: self.revocation_end(at).timestamp(),
            }]);
            return Ok(None);
        }
        Ok(self.published(revoked).into_iter().next())
    }

    /// Revokes every live session of the user.
    pub fn logout_all(&self, user_id: &str, context: &AuditContext) -> Result<Vec<RevokedSession>> {
        let revoked = self.revoke_all_sessions(user_id, "logout_all")?;
        self.audit(
            AuditEvent::new(events::LOGOUT_ALL)
                .subject(user_id)
                .detail("sessions", revoked.len()),
            context,
        )?;
        Ok(revoked)
    }

    /// Records one audit event in a transaction of its own.
    pub fn audit(&self, event: AuditEvent, context: &AuditContext) -> Result<()> {
        let mut conn = self.conn()?;
        conn.transaction(|c| {
            storage::repo::write_lock(c)?;
            event.record(c, context)?;
            Ok(())
        })
    }

    /// Revokes every live session of the user, for `reason` (logout from all
    /// devices, password reset, permission change, disabling).
    pub fn revoke_all_sessions(&self, user_id: &str, reason: &str) -> Result<Vec<RevokedSession>> {
        let at = now();
        let mut conn = self.conn()?;
        let revoked =
            conn.transaction(|c| self.revoke_sessions_in(c, user_id, None, reason, at))?;
        Ok(self.published(revoked))
    }

    /// Revokes the user's live sessions, except `keep`, inside a transaction.
    pub(crate) fn revoke_sessions_in(
        &self,
        conn: &mut AnyConnection,
        user_id: &str,
        keep: Option<&str>,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<Vec<RevokedSession>> {
        let ids = sessions::revoke_live_for_user(conn, user_id, keep, at.naive_utc(), reason)?;
        ids.into_iter()
            .map(|id| self.record_revocation(conn, id, at))
            .collect()
    }

    /// Revokes a session and, single sign-on, the sessions relying parties
    /// got from it. Empty when the session was not live (its followers
    /// ended with it then); otherwise the session comes first.
    pub(crate) fn revoke_session_in(
        &self,
        conn: &mut AnyConnection,
        session_id: &str,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<Vec<RevokedSession>> {
        if !sessions::revoke(conn, session_id, at.naive_utc(), reason)? {
            return Ok(Vec::new());
        }
        let followers = sessions::revoke_live_from(conn, session_id, at.naive_utc(), reason)?;
        std::iter::once(session_id.to_owned())
            .chain(followers)
            .map(|id| self.record_revocation(conn, id, at))
            .collect()
    }

    /// Until when a session revoked at `at` matters: its last access token
    /// expires within one TTL, plus the leeway.
    fn revocation_end(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        at + TimeDelta::seconds(
            self.verifier.policy().access_ttl_secs + self.verifier.policy().leeway_secs,
        )
    }

    /// Writes the revocation other instances poll for. It must outlive every
    /// access token of the session: at most one TTL plus the leeway.
    pub(crate) fn record_revocation(
        &self,
        conn: &mut AnyConnection,
        session_id: String,
        at: DateTime<Utc>,
    ) -> Result<RevokedSession> {
        let until = self.revocation_end(at);
        revocations::insert(
            conn,
            &NewRevocation {
                kind: "sid",
                subject: &session_id,
                expires_at: until.naive_utc(),
                created_at: at.naive_utc(),
            },
        )?;
        self.queue_backchannel_logout(conn, &session_id, at)?;
        Ok(RevokedSession {
            session_id,
            until: until.timestamp(),
        })
    }

    /// Sets a user's password by email (operator CLI).
    pub fn set_password(&self, email: &EmailAddress, password: &Password) -> Result<()> {
        let hash = self.hasher.hash(password.expose())?;
        let mut conn = self.conn()?;
        let user =
            users::find_by_email(&mut conn, email.as_str())?.ok_or(AccountsError::UserNotFound)?;
        users::set_password_hash(&mut conn, &user.id, &hash, now().naive_utc())?;
        Ok(())
    }

    /// Database round trip for readiness probes.
    pub fn ping(&self) -> Result<()> {
        let mut conn = self.conn()?;
        storage::repo::ping(&mut conn)?;
        Ok(())
    }
}

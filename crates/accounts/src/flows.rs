//! Email-driven account flows: signup with email verification, signup after
//! an organization verified the address (seed 004), password reset and change.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use diesel::Connection;
use mailer::{Locale, Template};
use storage::AnyConnection;
use storage::repo::{self, clients, organizations, users};

use crate::audit::{AuditContext, AuditEvent, events};
use crate::codes::{self, CodeCheck, Purpose};
use crate::error::AccountsError;
use crate::service::{Accounts, ClientInfo, NewAccount, RevokedSession, now};
use crate::throttle::Limit;
use crate::types::{DisplayName, EmailAddress, Password, UserStatus, Username};

type Result<T> = std::result::Result<T, AccountsError>;

/// How long an organization's verification of an address stays good for signup.
pub const ORGANIZATION_VERIFICATION_TTL: TimeDelta = TimeDelta::hours(24);

#[derive(Debug)]
pub struct SignupRequest {
    pub email: EmailAddress,
    pub password: Password,
    pub username: Option<Username>,
    pub name: Option<DisplayName>,
    pub organization_id: Option<String>,
    pub locale: Locale,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignupOutcome {
    pub user_id: String,
    pub status: UserStatus,
}

/// Percent-encodes a query-string value.
pub(crate) fn query_value(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Accounts {
    /// Runs `work` in a write transaction whose refusals (wrong code, …) are
    /// committed too: the inner `Result` is the caller's answer, the outer
    /// one a failure to talk to the database.
    pub(crate) fn transact<T>(
        &self,
        work: impl FnOnce(&mut AnyConnection, DateTime<Utc>) -> Result<Result<T>>,
    ) -> Result<T> {
        let at = now();
        let mut conn = self.conn()?;
        conn.transaction(|c| {
            repo::write_lock(c)?;
            work(c, at)
        })?
    }

    /// Renders a mail and queues it in the current transaction.
    pub(crate) fn queue_mail(
        &self,
        c: &mut AnyConnection,
        to: &str,
        template: &Template,
        locale: Locale,
    ) -> Result<()> {
        let row = mailer::outbox_row(to, template, locale)?;
        repo::outbox::insert(c, &row)?;
        Ok(())
    }

    fn mail_queued(&self) {
        (self.on_mail_queued)();
    }

    /// Runs `work` after the caller has its answer, when its duration would
    /// tell the caller something (whether an address has an account): on the
    /// blocking pool of the current tokio runtime, without waiting; failures
    /// are logged under `what`. Without a runtime (a synchronous embedder,
    /// the crate's tests) it runs now, and its failure is returned.
    pub(crate) fn after_answer(
        self: &Arc<Self>,
        what: &'static str,
        work: impl FnOnce(&Accounts) -> Result<()> + Send + 'static,
    ) -> Result<()> {
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let accounts = self.clone();
                let span = tracing::Span::current();
                runtime.spawn_blocking(move || {
                    span.in_scope(|| {
                        if let Err(e) = work(&accounts) {
                            tracing::warn!(error = %e, what, "work after the answer failed");
                        }
                    })
                });
                Ok(())
            }
            Err(_) => work(self),
        }
    }

    fn link(&self, path: &str) -> String {
        format!("{}{path}", self.public_url)
    }

    /// Creates an account. With an organization the address must have been
    /// verified for it within 24 h and the account is active at once;
    /// without one the account is pending until the mailed code is entered.
    ///
    /// A registered address gets the same answer as a new one (and its owner
    /// a "someone tried to sign up" mail), unless the deployment opted into
    /// `reveal_email_taken`. Both paths hash the password, so they take the
    /// same time.
    ///
    /// Counts against the mail limits first (it mails either way).
    pub fn signup(&self, request: SignupRequest, origin: &ClientInfo) -> Result<SignupOutcome> {
        self.admit_mail(request.email.as_str(), origin.ip.as_deref())?;
        request.password.check_for_account(
            request.email.as_str(),
            request.username.as_ref().map(Username::as_str),
        )?;
        let hash = self.hasher.hash(request.password.expose())?;
        let status = if request.organization_id.is_some() {
            UserStatus::Active
        } else {
            UserStatus::PendingVerification
        };
        let outcome = self.transact(|c, at| {
            if let Some(org_id) = &request.organization_id {
                let organization = organizations::find(c, org_id)?.filter(|o| o.active);
                if organization.is_none() {
                    return Ok(Err(AccountsError::OrganizationNotFound));
                }
                let verified_since = at.naive_utc() - ORGANIZATION_VERIFICATION_TTL;
                match organizations::email_verified_at(c, request.email.as_str(), org_id)? {
                    Some(verified) if verified > verified_since => {}
                    _ => return Ok(Err(AccountsError::EmailNotVerified)),
                }
            }
            if let Some(existing) = users::find_by_email(c, request.email.as_str())? {
                if self.reveal_email_taken {
                    return Ok(Err(AccountsError::EmailTaken));
                }
                self.notify_existing_owner(c, &existing, &request, at)?;
                // Indistinguishable from a new account; the id is random and unused.
                return Ok(Ok(SignupOutcome {
                    user_id: uuid::Uuid::new_v4().to_string(),
                    status,
                }));
            }
            let account = NewAccount {
                email: request.email.clone(),
                username: request.username.clone(),
                name: request.name.clone(),
                password: None,
                status,
                roles: Vec::new(),
                organization_id: request.organization_id.clone(),
                locale: Some(request.locale),
            };
            let user_id = match self.insert_user_in(c, &account, Some(&hash), at) {
                Ok(id) => id,
                Err(e @ AccountsError::UsernameTaken) => return Ok(Err(e)),
                Err(e) => return Err(e),
            };
            AuditEvent::new(events::SIGNUP)
                .subject(&user_id)
                .organization(request.organization_id.clone())
                .record(c, &AuditContext::default())?;
            match &request.organization_id {
                // The verification is spent: one signup per verification.
                Some(org_id) => {
                    organizations::forget_verified_email(c, request.email.as_str(), org_id)?
                }
                None => {
                    let code = codes::issue(
                        c,
                        &self.code_key,
                        Purpose::Signup,
                        request.email.as_str(),
                        None,
                        at.naive_utc(),
                    )?;
                    let minutes = codes::CODE_TTL.num_minutes();
                    self.queue_mail(
                        c,
                        request.email.as_str(),
                        &Template::VerificationCode { code, minutes },
                        request.locale,
                    )?;
                }
            }
            Ok(Ok(SignupOutcome { user_id, status }))
        })?;
        self.mail_queued();
        Ok(outcome)
    }

    /// A signup named a registered address. A pending owner gets a fresh
    /// verification code (they probably lost the first); anyone else a
    /// warning that someone tried. Never more than one mail per cooldown.
    fn notify_existing_owner(
        &self,
        c: &mut AnyConnection,
        existing: &storage::models::UserRow,
        request: &SignupRequest,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let locale = existing
            .locale
            .as_deref()
            .and_then(Locale::parse)
            .unwrap_or(request.locale);
        let template =
            if UserStatus::parse(&existing.status) == Some(UserStatus::PendingVerification) {
                match codes::issue(
                    c,
                    &self.code_key,
                    Purpose::Signup,
                    &existing.email,
                    None,
                    at.naive_utc(),
                ) {
                    Ok(code) => Template::VerificationCode {
                        code,
                        minutes: codes::CODE_TTL.num_minutes(),
                    },
                    Err(AccountsError::TooManyRequests { .. }) => return Ok(()),
                    Err(e) => return Err(e),
                }
            } else {
                let template_name = "signup_attempt_existing";
                let last = repo::outbox::last_queued_at(c, &existing.email, template_name)?;
                if last.is_some_and(|t| t + codes::RESEND_COOLDOWN > at.naive_utc()) {
                    return Ok(());
                }
                Template::SignupAttemptExisting {
                    login_link: self.link("/login"),
                    reset_link: self.link("/forgot-password"),
                }
            };
        self.queue_mail(c, &existing.email, &template, locale)
    }

    /// Activates a pending account with the code mailed at signup.
    pub fn verify_email(
        &self,
        email: &EmailAddress,
        code: &str,
        origin: &ClientInfo,
    ) -> Result<()> {
        self.admit_code_attempt(origin.ip.as_deref())?;
        self.transact(|c, at| {
            let user = users::find_by_email(c, email.as_str())?;
            let Some(user) = user
                .filter(|u| UserStatus::parse(&u.status) == Some(UserStatus::PendingVerification))
            else {
                codes::equivalent_work(c, &self.code_key, Purpose::Signup, email.as_str())?;
                return Ok(Err(AccountsError::InvalidCode));
            };
            match codes::check(
                c,
                &self.code_key,
                Purpose::Signup,
                email.as_str(),
                code,
                at.naive_utc(),
            )? {
                CodeCheck::Refused(e) => Ok(Err(e)),
                CodeCheck::Verified(_) => {
                    users::set_status(c, &user.id, UserStatus::Active.as_str(), at.naive_utc())?;
                    AuditEvent::new(events::EMAIL_VERIFIED)
                        .subject(&user.id)
                        .record(c, &AuditContext::default())?;
                    Ok(Ok(()))
                }
            }
        })
    }

    /// Mails a reset code when the address belongs to an active account
    /// (not one that exists only for a registered client); the caller
    /// answers 202 either way. Within the resend cooldown nothing is sent
    /// (silently: a 429 here would reveal that the account exists).
    ///
    /// Only the mail limits are applied before this returns; the lookup and
    /// the mail happen after the answer ([`Accounts::after_answer`]), since
    /// their duration differs between known and unknown addresses.
    pub fn forgot_password(
        self: &Arc<Self>,
        email: &EmailAddress,
        locale: Locale,
        origin: &ClientInfo,
    ) -> Result<()> {
        self.admit_mail(email.as_str(), origin.ip.as_deref())?;
        let email = email.clone();
        self.after_answer("password reset mail", move |accounts| {
            accounts.send_reset_code(&email, locale)
        })
    }

    fn send_reset_code(&self, email: &EmailAddress, locale: Locale) -> Result<()> {
        self.transact(|c, at| {
            let user = users::find_by_email(c, email.as_str())?
                .filter(|u| UserStatus::parse(&u.status) == Some(UserStatus::Active));
            let user = match user {
                Some(user) if !clients::is_client_user(c, &user.id)? => Some(user),
                _ => None,
            };
            let Some(user) = user else {
                codes::equivalent_work(c, &self.code_key, Purpose::PasswordReset, email.as_str())?;
                return Ok(Ok(()));
            };
            let code = match codes::issue(
                c,
                &self.code_key,
                Purpose::PasswordReset,
                &user.email,
                None,
                at.naive_utc(),
            ) {
                Ok(code) => code,
                Err(AccountsError::TooManyRequests { .. }) => return Ok(Ok(())),
                Err(e) => return Err(e),
            };
            let link = self.link(&format!(
                "/reset-password?email={}&code={code}",
                query_value(&user.email)
            ));
            let locale = user
                .locale
                .as_deref()
                .and_then(Locale::parse)
                .unwrap_or(locale);
            let template = Template::PasswordReset {
                code,
                link,
                minutes: codes::CODE_TTL.num_minutes(),
            };
            self.queue_mail(c, &user.email, &template, locale)?;
            Ok(Ok(()))
        })?;
        self.mail_queued();
        Ok(())
    }

    /// Sets a new password with a mailed reset code; every session of the
    /// user is revoked. A weak password (by the one rule, with the account's
    /// email and username) is refused after the code was checked, without
    /// spending it — so the answer says nothing about the account to anyone
    /// without the code.
    pub fn reset_password(
        &self,
        email: &EmailAddress,
        code: &str,
        new_password: &Password,
        origin: &ClientInfo,
    ) -> Result<Vec<RevokedSession>> {
        self.admit_code_attempt(origin.ip.as_deref())?;
        let hash = self.hasher.hash(new_password.expose())?;
        let revoked = self.transact(|c, at| {
            let user = match users::find_by_email(c, email.as_str())? {
                // Accounts that exist only for a registered client never get
                // a password.
                Some(user) if !clients::is_client_user(c, &user.id)? => Some(user),
                _ => None,
            };
            let Some(user) = user else {
                codes::equivalent_work(c, &self.code_key, Purpose::PasswordReset, email.as_str())?;
                return Ok(Err(AccountsError::InvalidCode));
            };
            match codes::check(
                c,
                &self.code_key,
                Purpose::PasswordReset,
                email.as_str(),
                code,
                at.naive_utc(),
            )? {
                CodeCheck::Refused(e) => Ok(Err(e)),
                CodeCheck::Verified(_) => {
                    // Failing (not `Ok(Err)`) rolls back: the code stays unspent.
                    new_password.check_for_account(&user.email, user.username.as_deref())?;
                    users::set_password_hash(c, &user.id, &hash, at.naive_utc())?;
                    let revoked =
                        self.revoke_sessions_in(c, &user.id, None, "password_reset", at)?;
                    AuditEvent::new(events::PASSWORD_RESET)
                        .subject(&user.id)
                        .detail("sessions_revoked", revoked.len())
                        .record(c, &AuditContext::default())?;
                    Ok(Ok(revoked))
                }
            }
        })?;
        Ok(self.published(revoked))
    }

    /// Changes the password of a logged-in user after checking the current
    /// one; the user's other sessions are revoked, this one stays.
    ///
    /// Sensitive: for a user with a second factor the session must have
    /// authenticated recently with it ([`AccountsError::StepUpRequired`]
    /// before the password is looked at); for a user without one the
    /// current password is that fresh authentication (see
    /// `step_up::check_password_change_step_up`).
    pub fn change_password(
        &self,
        user_id: &str,
        session_id: &str,
        current: &str,
        new_password: &Password,
    ) -> Result<Vec<RevokedSession>> {
        self.check_password_change_step_up(user_id, session_id)?;
        let mut conn = self.conn()?;
        let user = users::find_by_id(&mut conn, user_id)?.ok_or(AccountsError::UserNotFound)?;
        drop(conn);
        // A stolen access token or cookie must not buy unlimited guesses at
        // the password: wrong current passwords count against the same
        // per-account budget as failed logins.
        let account = format!("user {}", user.id);
        let limits = [(Limit::LoginFailuresPerAccount, account.as_str())];
        let current_ok = self.guess_password(&limits, || match user.password_hash.as_deref() {
            Some(hash) => self.hasher.verify(current, hash),
            None => Ok(false),
        })?;
        if !current_ok {
            return Err(AccountsError::InvalidCredentials);
        }
        new_password.check_for_account(&user.email, user.username.as_deref())?;
        let hash = self.hasher.hash(new_password.expose())?;
        let revoked = self.transact(|c, at| {
            users::set_password_hash(c, user_id, &hash, at.naive_utc())?;
            let revoked =
                self.revoke_sessions_in(c, user_id, Some(session_id), "password_change", at)?;
            let context = AuditContext {
                actor: Some(user_id.to_owned()),
                ..AuditContext::default()
            };
            AuditEvent::new(events::PASSWORD_CHANGED)
                .subject(user_id)
                .detail("sessions_revoked", revoked.len())
                .record(c, &context)?;
            Ok(Ok(revoked))
        })?;
        Ok(self.published(revoked))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(super::query_value("kim+1@snu.ac.kr"), "kim%2B1%40snu.ac.kr");
    }
}

//! Company registration reviewed by the operator's team (seed 000):
//! submit → review (approve with permissions, or reject with a reason) →
//! activation link → the contact sets a password and is logged in.

use chrono::{NaiveDateTime, TimeDelta};
use mailer::{Locale, Template};
use secrecy::ExposeSecret;
use storage::AnyConnection;
use storage::models::{ActivationTokenRow, OrganizationRow, RegistrationRow};
use storage::repo::{activation_tokens, organizations, registrations, users};

use crate::admin::Actor;
use crate::audit::{AuditContext, AuditEvent, events};
use crate::error::AccountsError;
use crate::permissions::Role;
use crate::secrets::{new_opaque_token, token_hash};
use crate::service::{Accounts, ClientInfo, IssuedTokens, NewAccount};
use crate::types::{DisplayName, EmailAddress, ParseError, Password, PhoneNumber, UserStatus};

type Result<T> = std::result::Result<T, AccountsError>;

/// Activation links live this long.
pub const ACTIVATION_TTL: TimeDelta = TimeDelta::hours(72);

/// A parsed registration request.
#[derive(Debug, Clone)]
pub struct RegistrationForm {
    pub company_name: String,
    pub contact_name: DisplayName,
    pub contact_email: EmailAddress,
    pub contact_phone: PhoneNumber,
}

/// The longest company name, in characters.
pub const COMPANY_NAME_MAX_CHARS: usize = 200;
/// The longest rejection reason, in characters.
pub const REJECTION_REASON_MAX_CHARS: usize = 2000;

impl RegistrationForm {
    /// Validates every field, returning all problems at once.
    pub fn parse(
        company_name: &str,
        contact_name: &str,
        contact_email: &str,
        contact_phone: &str,
        phone_region: &str,
    ) -> std::result::Result<Self, Vec<ParseError>> {
        let company = company_name.trim();
        let company_ok = !company.is_empty()
            && company.chars().count() <= COMPANY_NAME_MAX_CHARS
            && !company.chars().any(char::is_control);
        let company = if company_ok {
            Ok(company.to_owned())
        } else {
            Err(ParseError {
                field: "company_name",
                reason: "must be 1 to 200 characters",
            })
        };
        let name = DisplayName::parse(contact_name).map_err(|e| ParseError {
            field: "contact_name",
            reason: e.reason,
        });
        let email = EmailAddress::parse(contact_email).map_err(|e| ParseError {
            field: "contact_email",
            reason: e.reason,
        });
        let phone = PhoneNumber::parse(contact_phone, phone_region);
        match (company, name, email, phone) {
            (Ok(company_name), Ok(contact_name), Ok(contact_email), Ok(contact_phone)) => {
                Ok(Self {
                    company_name,
                    contact_name,
                    contact_email,
                    contact_phone,
                })
            }
            (company, name, email, phone) => {
                Err([company.err(), name.err(), email.err(), phone.err()]
                    .into_iter()
                    .flatten()
                    .collect())
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationView {
    pub id: String,
    pub company_name: String,
    pub contact_name: String,
    pub contact_email: String,
    pub contact_phone: String,
    pub status: String,
    pub created_at: NaiveDateTime,
    pub decided_at: Option<NaiveDateTime>,
    pub decided_by: Option<String>,
    pub decision_note: Option<String>,
    pub organization_id: Option<String>,
    pub user_id: Option<String>,
}

impl From<RegistrationRow> for RegistrationView {
    fn from(r: RegistrationRow) -> Self {
        Self {
            id: r.id,
            company_name: r.company_name,
            contact_name: r.contact_name,
            contact_email: r.contact_email,
            contact_phone: r.contact_phone,
            status: r.status,
            created_at: r.created_at,
            decided_at: r.decided_at,
            decided_by: r.decided_by,
            decision_note: r.decision_note,
            organization_id: r.organization_id,
            user_id: r.user_id,
        }
    }
}

/// What `admin create` produced.
pub struct AdminCreated {
    pub user_id: String,
    /// Set when no password was given: the one-time link to set one.
    pub activation_link: Option<String>,
}

impl Accounts {
    /// Stores a registration for review and tells the operators.
    pub fn submit_registration(
        &self,
        form: RegistrationForm,
        locale: Locale,
        context: &AuditContext,
    ) -> Result<RegistrationView> {
        self.admit_mail(form.contact_email.as_str(), context.ip.as_deref())?;
        let view = self.transact(|c, at| {
            if registrations::pending_for_email(c, form.contact_email.as_str())?.is_some() {
                return Ok(Err(AccountsError::RegistrationPending));
            }
            let row = RegistrationRow {
                id: uuid::Uuid::new_v4().to_string(),
                company_name: form.company_name.clone(),
                contact_name: form.contact_name.as_str().to_owned(),
                contact_email: form.contact_email.as_str().to_owned(),
                contact_phone: form.contact_phone.as_str().to_owned(),
                status: registrations::PENDING.to_owned(),
                created_at: at.naive_utc(),
                decided_at: None,
                decided_by: None,
                decision_note: None,
                organization_id: None,
                user_id: None,
            };
            registrations::insert(c, &row)?;
            let notice = Template::RegistrationReceived {
                company: row.company_name.clone(),
                contact_name: row.contact_name.clone(),
                contact_email: row.contact_email.clone(),
                contact_phone: row.contact_phone.clone(),
            };
            for operator in &self.operator_emails {
                self.queue_mail(c, operator.as_str(), &notice, locale)?;
            }
            AuditEvent::new(events::REGISTRATION_SUBMITTED)
                .subject(&row.id)
                .detail("company_name", &row.company_name)
                .detail("contact_email", &row.contact_email)
                .record(c, context)?;
            Ok(Ok(RegistrationView::from(row)))
        })?;
        (self.on_mail_queued)();
        Ok(view)
    }

    pub fn registration(&self, id: &str) -> Result<Option<RegistrationView>> {
        let mut conn = self.conn()?;
        Ok(registrations::find(&mut conn, id)?.map(RegistrationView::from))
    }

    pub fn list_registrations(
        &self,
        status: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<RegistrationView>> {
        let mut conn = self.conn()?;
        Ok(registrations::list(&mut conn, status, offset, limit)?
            .into_iter()
            .map(RegistrationView::from)
            .collect())
    }

    /// Approves, in one transaction: the organization, the contact's account
    /// (`invited`, role `org_admin`, the granted permissions), a 72-hour
    /// activation token (stored hashed) and the activation mail.
    pub fn approve_registration(
        &self,
        actor: &Actor,
        id: &str,
        permissions: &[String],
        note: Option<&str>,
        locale: Locale,
    ) -> Result<RegistrationView> {
        if !actor.is_admin() {
            return Err(AccountsError::Forbidden);
        }
        let permissions = self.catalog.validate(permissions)?;
        // Approving grants the new company's contact its permissions: a
        // permission change like any other (see `step_up`).
        self.check_actor_step_up(actor)?;
        let view = self.transact(|c, at| {
            let Some(registration) = registrations::find(c, id)? else {
                return Ok(Err(AccountsError::RegistrationNotFound));
            };
            if registration.status != registrations::PENDING {
                return Ok(Err(AccountsError::AlreadyDecided));
            }
            let email = EmailAddress::parse(&registration.contact_email)?;
            if users::find_by_email(c, email.as_str())?.is_some() {
                return Ok(Err(AccountsError::EmailTaken));
            }
            let org_id = uuid::Uuid::new_v4().to_string();
            organizations::insert(
                c,
                &OrganizationRow {
                    id: org_id.clone(),
                    name: registration.company_name.clone(),
                    region: None,
                    active: true,
                    created_at: at.naive_utc(),
                },
            )?;
            let account = NewAccount {
                email: email.clone(),
                username: None,
                name: DisplayName::parse(&registration.contact_name).ok(),
                password: None,
                status: UserStatus::Invited,
                roles: vec![Role::OrgAdmin.as_str().to_owned()],
                organization_id: Some(org_id.clone()),
                locale: Some(locale),
            };
            let user_id = self.insert_user_in(c, &account, None, at)?;
            users::replace_permissions(c, &user_id, &permissions, at.naive_utc())?;
            let link = self.issue_activation_in(c, &user_id, at.naive_utc())?;
            let mail = Template::ActivationLink {
                link,
                organization: registration.company_name.clone(),
                hours: ACTIVATION_TTL.num_hours(),
            };
            self.queue_mail(c, email.as_str(), &mail, locale)?;
            if !registrations::decide(
                c,
                id,
                registrations::APPROVED,
                &actor.user_id,
                note,
                Some(&org_id),
                Some(&user_id),
                at.naive_utc(),
            )? {
                return Ok(Err(AccountsError::AlreadyDecided));
            }
            AuditEvent::new(events::REGISTRATION_APPROVED)
                .subject(id)
                .organization(Some(org_id.clone()))
                .detail("user_id", &user_id)
                .detail("permissions", &permissions)
                .detail("note", note)
                .record(c, &actor.context)?;
            let row = registrations::find(c, id)?.ok_or(AccountsError::RegistrationNotFound)?;
            Ok(Ok(RegistrationView::from(row)))
        })?;
        (self.on_mail_queued)();
        Ok(view)
    }

    /// Rejects with a reason, which is mailed to the contact.
    pub fn reject_registration(
        &self,
        actor: &Actor,
        id: &str,
        reason: &str,
        locale: Locale,
    ) -> Result<RegistrationView> {
        if !actor.is_admin() {
            return Err(AccountsError::Forbidden);
        }
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > REJECTION_REASON_MAX_CHARS {
            return Err(ParseError {
                field: "reason",
                reason: "must be 1 to 2000 characters",
            }
            .into());
        }
        let view = self.transact(|c, at| {
            let Some(registration) = registrations::find(c, id)? else {
                return Ok(Err(AccountsError::RegistrationNotFound));
            };
            if !registrations::decide(
                c,
                id,
                registrations::REJECTED,
                &actor.user_id,
                Some(reason),
                None,
                None,
                at.naive_utc(),
            )? {
                return Ok(Err(AccountsError::AlreadyDecided));
            }
            let mail = Template::RegistrationRejected {
                company: registration.company_name.clone(),
                reason: reason.to_owned(),
            };
            self.queue_mail(c, &registration.contact_email, &mail, locale)?;
            AuditEvent::new(events::REGISTRATION_REJECTED)
                .subject(id)
                .detail("reason", reason)
                .record(c, &actor.context)?;
            let row = registrations::find(c, id)?.ok_or(AccountsError::RegistrationNotFound)?;
            Ok(Ok(RegistrationView::from(row)))
        })?;
        (self.on_mail_queued)();
        Ok(view)
    }

    /// A fresh activation token for the user (older ones die); returns the link.
    fn issue_activation_in(
        &self,
        c: &mut AnyConnection,
        user_id: &str,
        at: NaiveDateTime,
    ) -> Result<String> {
        activation_tokens::supersede(c, user_id, at)?;
        let token = new_opaque_token();
        activation_tokens::insert(
            c,
            &ActivationTokenRow {
                id: uuid::Uuid::new_v4().to_string(),
                user_id: user_id.to_owned(),
                token_hash: token_hash(token.expose_secret()),
                created_at: at,
                expires_at: at + ACTIVATION_TTL,
                used_at: None,
            },
        )?;
        Ok(format!(
            "{}/activate?token={}",
            self.public_url,
            token.expose_secret()
        ))
    }

    /// Spends an activation token: sets the password, activates the account
    /// and logs in. Opening the link does not get here; only this POST does.
    pub fn activate(
        &self,
        token: &str,
        password: &Password,
        client: &ClientInfo,
        context: &AuditContext,
    ) -> Result<IssuedTokens> {
        let hash = self.hasher.hash(password.expose())?;
        let user = self.transact(|c, at| {
            let Some(user_id) = activation_tokens::consume(c, &token_hash(token), at.naive_utc())?
            else {
                return Ok(Err(AccountsError::InvalidActivationToken));
            };
            let Some(user) = users::find_by_id(c, &user_id)? else {
                return Ok(Err(AccountsError::InvalidActivationToken));
            };
            // Refuse without spending the link: roll back by failing.
            password.check_for_account(&user.email, user.username.as_deref())?;
            if UserStatus::parse(&user.status) == Some(UserStatus::Disabled) {
                return Ok(Err(AccountsError::AccountNotActive));
            }
            users::set_password_hash(c, &user.id, &hash, at.naive_utc())?;
            users::set_status(c, &user.id, UserStatus::Active.as_str(), at.naive_utc())?;
            AuditEvent::new(events::ACCOUNT_ACTIVATED)
                .subject(&user.id)
                .organization(user.organization_id.clone())
                .record(c, context)?;
            Ok(Ok(
                users::find_by_id(c, &user.id)?.ok_or(AccountsError::UserNotFound)?
            ))
        })?;
        self.start_session(&user, client, None, &["pwd"])
    }

    /// Mails a new activation link to an invited account; does nothing
    /// (silently) for any other address, so it reveals nothing.
    ///
    /// Only the mail limits are applied before this returns; the rest
    /// happens after the answer (see [`Accounts::after_answer`]).
    pub fn resend_activation(
        self: &std::sync::Arc<Self>,
        email: &EmailAddress,
        locale: Locale,
        origin: &ClientInfo,
    ) -> Result<()> {
        self.admit_mail(email.as_str(), origin.ip.as_deref())?;
        let email = email.clone();
        self.after_answer("activation mail", move |accounts| {
            accounts.send_activation_again(&email, locale)
        })
    }

    fn send_activation_again(&self, email: &EmailAddress, locale: Locale) -> Result<()> {
        self.transact(|c, at| {
            let Some(user) = users::find_by_email(c, email.as_str())? else {
                return Ok(Ok(()));
            };
            if UserStatus::parse(&user.status) != Some(UserStatus::Invited) {
                return Ok(Ok(()));
            }
            let organization = match &user.organization_id {
                Some(org) => organizations::find(c, org)?
                    .map(|o| o.name)
                    .unwrap_or_default(),
                None => String::new(),
            };
            let link = self.issue_activation_in(c, &user.id, at.naive_utc())?;
            let locale = user
                .locale
                .as_deref()
                .and_then(Locale::parse)
                .unwrap_or(locale);
            self.queue_mail(
                c,
                &user.email,
                &Template::ActivationLink {
                    link,
                    organization,
                    hours: ACTIVATION_TTL.num_hours(),
                },
                locale,
            )?;
            Ok(Ok(()))
        })?;
        (self.on_mail_queued)();
        Ok(())
    }

    /// Bootstraps an operator account with the `admin` role: with a
    /// password it is active at once; without one it is invited and the
    /// one-time activation link is returned. No default password, ever.
    pub fn create_admin(
        &self,
        email: &EmailAddress,
        password: Option<&Password>,
    ) -> Result<AdminCreated> {
        if let Some(password) = password {
            password.check_for_account(email.as_str(), None)?;
        }
        let hash = password.map(|p| self.hasher.hash(p.expose())).transpose()?;
        let context = AuditContext {
            actor: Some("cli".to_owned()),
            ..AuditContext::default()
        };
        self.transact(|c, at| {
            let account = NewAccount {
                email: email.clone(),
                username: None,
                name: None,
                password: None,
                status: if hash.is_some() {
                    UserStatus::Active
                } else {
                    UserStatus::Invited
                },
                roles: vec![Role::Admin.as_str().to_owned()],
                organization_id: None,
                locale: None,
            };
            let user_id = match self.insert_user_in(c, &account, hash.as_deref(), at) {
                Ok(id) => id,
                Err(e @ AccountsError::EmailTaken) => return Ok(Err(e)),
                Err(e) => return Err(e),
            };
            let activation_link = match hash {
                Some(_) => None,
                None => Some(self.issue_activation_in(c, &user_id, at.naive_utc())?),
            };
            AuditEvent::new(events::ADMIN_CREATED)
                .subject(&user_id)
                .record(c, &context)?;
            Ok(Ok(AdminCreated {
                user_id,
                activation_link,
            }))
        })
    }
}

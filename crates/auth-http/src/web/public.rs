//! Pages for visitors who are not signed in yet: home, login, company
//! registration, activation, password reset and organization signup.

use accounts::{DisplayName, EmailAddress, Locale, Password, SignupRequest, UserStatus, Username};
use actix_web::http::StatusCode;
use actix_web::web;
use minijinja::value::Serde;
use minijinja::{Value, context};
use serde::{Deserialize, Serialize};

use super::visitor::safe_next;
use super::{Form, PageResult, Visitor};
use crate::http::error::{ApiError, FieldErrors};
use crate::http::run_blocking;
use crate::http::{flows, registrations, sessions};

/// Reads the posted form after checking its CSRF token.
pub(super) fn posted(visitor: &Visitor, body: &[u8]) -> Result<Form, super::PageError> {
    if body.len() > super::form::MAX_FORM_BYTES {
        return Err(visitor.failure(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the form is too large",
        )));
    }
    let form = Form::parse(body);
    visitor.check_csrf(&form)?;
    Ok(form)
}

/// The new password typed twice (`field` and `field_confirm`): parsed, and
/// the same both times.
pub(super) fn new_password(form: &Form, field: &'static str) -> Result<Password, ApiError> {
    let confirm = format!("{field}_confirm");
    let mut fields = FieldErrors::new();
    let password =
        fields.take(
            Password::parse(form.secret(field)).map_err(|e| accounts::ParseError {
                field,
                reason: e.reason,
            }),
        );
    if form.raw(field) != form.raw(&confirm) {
        fields.refuse(&confirm, "does not match");
    }
    fields.finish(password)
}

pub async fn home(visitor: Visitor) -> PageResult {
    if visitor.user.is_some() {
        return Ok(visitor.redirect("/dashboard"));
    }
    visitor.page("home.html", context! {})
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

pub async fn switch_language(visitor: Visitor, path: web::Path<String>) -> PageResult {
    let query: NextQuery = visitor.query()?;
    let locale = Locale::parse(&path).unwrap_or_default();
    let fallback = visitor.pages.url("/");
    let next = query
        .next
        .as_deref()
        .map(safe_next)
        .filter(|n| *n != "/dashboard" || visitor.user.is_some())
        .unwrap_or(&fallback)
        .to_owned();
    Ok(visitor.language_chosen(locale, &next))
}

// ---- login ----

pub async fn login_form(visitor: Visitor) -> PageResult {
    let query: NextQuery = visitor.query()?;
    let next = safe_next(query.next.as_deref().unwrap_or("/dashboard")).to_owned();
    if visitor.user.is_some() {
        return Ok(visitor.redirect(&next));
    }
    visitor.page("login.html", context! { login => "", next => next })
}

pub async fn login(visitor: Visitor, body: web::Bytes) -> PageResult {
    let form = posted(&visitor, &body)?;
    let next = safe_next(&form.text("next")).to_owned();
    let login = form.text("login");
    let outcome = crate::http::auth::password_login(
        &visitor.state,
        &visitor.req,
        login.clone(),
        form.secret("password"),
    )
    .await;
    match outcome {
        // An expired or operator-flagged password: straight to the form.
        Ok(tokens) if tokens.password_change_due => {
            Ok(visitor.signed_in(&tokens, "/dashboard?notice=password_due#password"))
        }
        Ok(tokens) => Ok(visitor.signed_in(&tokens, &next)),
        // A right password for an account with a second factor.
        Err(e) if e.code == "mfa_required" => super::mfa::second_step_page(&visitor, &e, &next),
        Err(e) => visitor.form_again(
            &e,
            "login.html",
            context! { login => login, next => next },
            &[],
        ),
    }
}

// ---- company registration (seed 000) ----

#[derive(Serialize, Default)]
struct Registration {
    company_name: String,
    contact_name: String,
    contact_email: String,
    contact_phone: String,
}

impl Registration {
    fn from_form(form: &Form) -> Self {
        Self {
            company_name: form.text("company_name"),
            contact_name: form.text("contact_name"),
            contact_email: form.text("contact_email"),
            contact_phone: form.text("contact_phone"),
        }
    }

    fn parse(&self, visitor: &Visitor) -> Result<accounts::RegistrationForm, ApiError> {
        registrations::parse_registration(
            &visitor.state,
            &self.company_name,
            &self.contact_name,
            &self.contact_email,
            &self.contact_phone,
        )
    }
}

pub async fn registration_form(visitor: Visitor) -> PageResult {
    visitor.page(
        "register.html",
        context! { values => Value::from(Serde(Registration::default())) },
    )
}

/// Step 2: the filled form for review; "edit" goes back with every value.
pub async fn registration_review(visitor: Visitor, body: web::Bytes) -> PageResult {
    let form = posted(&visitor, &body)?;
    let values = Registration::from_form(&form);
    if form.checked("edit") {
        return visitor.page(
            "register.html",
            context! { values => Value::from(Serde(&values)) },
        );
    }
    match values.parse(&visitor) {
        Ok(_) => visitor.page(
            "register_review.html",
            context! { values => Value::from(Serde(&values)) },
        ),
        Err(e) => visitor.form_again(
            &e,
            "register.html",
            context! { values => Value::from(Serde(&values)) },
            &[],
        ),
    }
}

/// Step 3: filed for review; the confirmation says what happens next.
pub async fn registration_submit(visitor: Visitor, body: web::Bytes) -> PageResult {
    let form = posted(&visitor, &body)?;
    let values = Registration::from_form(&form);
    let submitted = match values.parse(&visitor) {
        Ok(parsed) => {
            registrations::register_company(&visitor.state, &visitor.req, parsed, visitor.locale)
                .await
        }
        Err(e) => Err(e),
    };
    match submitted {
        Ok(_) => Ok(visitor.redirect("/register/done")),
        Err(e) => visitor.form_again(
            &e,
            "register.html",
            context! { values => Value::from(Serde(&values)) },
            &[],
        ),
    }
}

pub async fn registration_done(visitor: Visitor) -> PageResult {
    visitor.notice("registered")
}

// ---- activation (the emailed link) ----

#[derive(Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

/// Shows whose account the link opens and asks for a password; nothing is
/// spent until the form is sent.
pub async fn activation_form(visitor: Visitor) -> PageResult {
    let query: TokenQuery = visitor.query()?;
    let token = query.token.clone().unwrap_or_default();
    let account = sessions::activation_preview(&visitor.state, token.clone().into())
        .await
        .map_err(|e| visitor.failure(e))?;
    visitor.page(
        "activate.html",
        context! { token => token, account => preview(&account) },
    )
}

fn preview(account: &accounts::ActivationPreview) -> minijinja::Value {
    context! {
        email => account.email.clone(),
        name => account.name.clone(),
        organization => account.organization.clone(),
    }
}

pub async fn activate(visitor: Visitor, body: web::Bytes) -> PageResult {
    let form = posted(&visitor, &body)?;
    let token = form.text("token");
    let account = sessions::activation_preview(&visitor.state, token.clone().into())
        .await
        .map_err(|e| visitor.failure(e))?;
    let activated = match new_password(&form, "password") {
        Ok(password) => {
            registrations::activate_account(
                &visitor.state,
                &visitor.req,
                token.clone().into(),
                password,
            )
            .await
        }
        Err(e) => Err(e),
    };
    match activated {
        Ok(tokens) => Ok(visitor.signed_in(&tokens, "/dashboard")),
        Err(e) if e.code == "invalid_activation_token" => Err(visitor.failure(e)),
        Err(e) => visitor.form_again(
            &e,
            "activate.html",
            context! { token => token, account => preview(&account) },
            &[],
        ),
    }
}

// ---- forgotten password ----

#[derive(Deserialize)]
pub struct ResetQuery {
    email: Option<String>,
    code: Option<String>,
}

pub async fn forgot_form(visitor: Visitor) -> PageResult {
    visitor.page("forgot.html", context! { email => "" })
}

/// Mails a code when the address has an account; the answer is the same
/// either way: the reset form, with a note to look in the mailbox.
pub async fn forgot(visitor: Visitor, body: web::Bytes) -> PageResult {
    let form = posted(&visitor, &body)?;
    let email = form.text("email");
    let sent = match EmailAddress::parse(&email) {
        Ok(address) => {
            flows::send_reset_code(&visitor.state, &visitor.req, address, visitor.locale).await
        }
        Err(e) => Err(ApiError::validation("email", e.reason)),
    };
    match sent {
        Ok(()) => visitor.page(
            "reset.html",
            context! { email => email, code => "", sent => true },
        ),
        Err(e) => visitor.form_again(&e, "forgot.html", context! { email => email }, &[]),
    }
}

/// From the mailed link (address and code filled in) or typed by hand.
pub async fn reset_form(visitor: Visitor) -> PageResult {
    let query: ResetQuery = visitor.query()?;
    visitor.page(
        "reset.html",
        context! {
            email => query.email.clone().unwrap_or_default(),
            code => query.code.clone().unwrap_or_default(),
            sent => false,
        },
    )
}

pub async fn reset(visitor: Visitor, body: web::Bytes) -> PageResult {
    let form = posted(&visitor, &body)?;
    let (email, code) = (form.text("email"), form.text("code"));
    // In the API's order: the address, the code, the password.
    let reset = async {
        let address =
            EmailAddress::parse(&email).map_err(|e| ApiError::validation("email", e.reason))?;
        flows::check_code_shape(&code)?;
        let password = new_password(&form, "password")?;
        flows::reset_with_code(
            &visitor.state,
            &visitor.req,
            address,
            code.clone(),
            password,
        )
        .await
    }
    .await;
    match reset {
        Ok(()) => visitor.notice("password_reset"),
        Err(e) => visitor.form_again(
            &e,
            "reset.html",
            context! { email => email, code => code, sent => false },
            &[],
        ),
    }
}

// ---- organization signup (seed 004) ----

#[derive(Serialize, Default)]
struct Signup {
    step: &'static str,
    organization_id: String,
    organization_name: String,
    email: String,
    username: String,
    name: String,
}

async fn organizations(visitor: &Visitor) -> Result<Vec<accounts::Organization>, ApiError> {
    let accounts = visitor.state.accounts.clone();
    Ok(run_blocking(move || accounts.list_organizations(true)).await??)
}

impl Signup {
    fn from_form(form: &Form, step: &'static str) -> Self {
        Self {
            step,
            organization_id: form.text("organization_id"),
            organization_name: String::new(),
            email: form.text("email"),
            username: form.text("username"),
            name: form.text("name"),
        }
    }

    /// The page of this step, with the organizations and their domains.
    async fn page(mut self, visitor: &Visitor, error: Option<&ApiError>) -> PageResult {
        let organizations = organizations(visitor)
            .await
            .map_err(|e| visitor.failure(e))?;
        if let Some(o) = organizations.iter().find(|o| o.id == self.organization_id) {
            self.organization_name = o.name.clone();
        }
        let organizations: Vec<_> = organizations
            .iter()
            .map(|o| context! { id => o.id.clone(), name => o.name.clone(), domains => o.email_domains.clone() })
            .collect();
        let page = context! { signup => Value::from(Serde(&self)), organizations => organizations };
        match error {
            Some(e) => visitor.form_again(e, "signup.html", page, &[]),
            None => visitor.page("signup.html", page),
        }
    }
}

pub async fn signup_start(visitor: Visitor) -> PageResult {
    Signup {
        step: "email",
        ..Signup::default()
    }
    .page(&visitor, None)
    .await
}

/// Step 1 → 2: an address under the organization's domains gets a code.
pub async fn signup_email(visitor: Visitor, body: web::Bytes) -> PageResult {
    let form = posted(&visitor, &body)?;
    let signup = Signup::from_form(&form, "email");
    let sent = match EmailAddress::parse(&signup.email) {
        Ok(address) => {
            flows::send_organization_code(
                &visitor.state,
                &visitor.req,
                signup.organization_id.clone(),
                address,
                visitor.locale,
            )
            .await
        }
        Err(e) => Err(ApiError::validation("email", e.reason)),
    };
    match sent {
        Ok(()) => {
            Signup {
                step: "code",
                ..signup
            }
            .page(&visitor, None)
            .await
        }
        Err(e) => signup.page(&visitor, Some(&fix_org_error(e))).await,
    }
}

/// "No such organization" is about the choice in the form.
fn fix_org_error(e: ApiError) -> ApiError {
    if e.code == "organization_not_found" {
        ApiError::validation("organization_id", "is not an organization you can join")
    } else {
        e
    }
}

/// Step 2 → 3: the mailed code proves the address.
pub async fn signup_code(visitor: Visitor, body: web::Bytes) -> PageResult {
    let form = posted(&visitor, &body)?;
    let signup = Signup::from_form(&form, "code");
    let confirmed = match EmailAddress::parse(&signup.email) {
        Ok(address) => {
            flows::confirm_organization_code_for(
                &visitor.state,
                &visitor.req,
                address,
                form.text("code"),
            )
            .await
        }
        Err(e) => Err(ApiError::validation("email", e.reason)),
    };
    match confirmed {
        Ok(organization_id) => {
            Signup {
                step: "account",
                organization_id,
                ..signup
            }
            .page(&visitor, None)
            .await
        }
        Err(e) => signup.page(&visitor, Some(&e)).await,
    }
}

/// Step 3: username and password (typed twice); the account is active at once.
pub async fn signup_account(visitor: Visitor, body: web::Bytes) -> PageResult {
    let form = posted(&visitor, &body)?;
    let signup = Signup::from_form(&form, "account");
    let request = (|| {
        let mut fields = FieldErrors::new();
        let email = fields.take(EmailAddress::parse(&signup.email));
        let username = fields.take(Username::parse(&signup.username));
        let name = (!signup.name.is_empty()).then(|| fields.take(DisplayName::parse(&signup.name)));
        let password = match new_password(&form, "password") {
            Ok(p) => Some(p),
            Err(e) => {
                e.fields()
                    .into_iter()
                    .for_each(|f| fields.refuse(f, "is not acceptable"));
                None
            }
        };
        let (email, password) = fields.finish((email, password))?;
        Ok::<_, ApiError>(SignupRequest {
            email,
            password,
            username,
            name: name.flatten(),
            organization_id: Some(signup.organization_id.clone()),
            locale: visitor.locale,
        })
    })();
    let outcome = match request {
        Ok(request) => flows::sign_up(&visitor.state, &visitor.req, request).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(o) if o.status == UserStatus::Active => visitor.notice("signed_up"),
        Ok(_) => visitor.notice("signed_up_pending"),
        Err(e) => signup.page(&visitor, Some(&fix_org_error(e))).await,
    }
}

//! Second factors in the pages: the login's second step (a code from the
//! app, or a recovery code), and the signed-in user's enrolment: an
//! authenticator app shown as a server-rendered SVG QR code (no script),
//! its confirmation, recovery codes as text and as a download, removal.
//! Every rule is `accounts::mfa`'s, as for the API.

use accounts::{AccountsError, PasskeyAssertion, SecondFactor};
use actix_web::web;
use minijinja::context;
use qrcode::QrCode;
use qrcode::render::svg;
use secrecy::{ExposeSecret, SecretString};

use super::public::posted;
use super::visitor::safe_next;
use super::{PageResult, SignedIn, Visitor};
use crate::http::error::ApiError;
use crate::http::extract::client_info;
use crate::http::run_blocking;

/// The second step after a right password (`mfa_required`): the form that
/// carries the single-use `mfa_token` on.
pub(super) fn second_step_page(visitor: &Visitor, error: &ApiError, next: &str) -> PageResult {
    let member = |name: &str| {
        error
            .extensions
            .as_ref()
            .and_then(|members| members.get(name))
            .cloned()
    };
    let token = member("mfa_token")
        .and_then(|t| t.as_str().map(str::to_owned))
        .unwrap_or_default();
    let methods: Vec<String> = member("methods")
        .and_then(|m| serde_json::from_value(m).ok())
        .unwrap_or_default();
    visitor.page(
        "login_mfa.html",
        second_step_context(&token, next, "totp", &methods),
    )
}

/// What the second step's page shows: a form for each method the user has.
fn second_step_context(
    token: &str,
    next: &str,
    method: &str,
    methods: &[String],
) -> minijinja::Value {
    let has = |m: &str| methods.iter().any(|x| x == m);
    context! {
        mfa_token => token,
        next => next,
        method => method,
        methods => methods.join(" "),
        totp => has("totp"),
        recovery => has("recovery_code"),
        passkey => has("webauthn"),
    }
}

/// `POST /login/mfa`: the code for the `mfa_token`.
pub async fn login_second_step(visitor: Visitor, body: web::Bytes) -> PageResult {
    let form = posted(&visitor, &body)?;
    let next = safe_next(&form.text("next")).to_owned();
    let token = form.text("mfa_token");
    // The forms carry the methods on, to show them again after a mistake.
    let methods: Vec<String> = form
        .text("methods")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let passkey = form.text("method") == "webauthn";
    let challenge_id = form.text("challenge_id");
    let credential = passkey_answer(&form);
    let recovery = form.text("method") == "recovery_code";
    let code = if recovery {
        form.text("recovery_code")
    } else {
        form.text("code")
    };
    let client = client_info(&visitor.req);
    let accounts = visitor.state.accounts.clone();
    let mfa_token = SecretString::from(token.clone());
    let outcome = if token.len() > crate::http::schema::OPAQUE_TOKEN_MAX_BYTES
        || code.chars().count() > crate::http::schema::CODE_MAX_CHARS
    {
        Err(ApiError::from(AccountsError::InvalidSecondFactor))
    } else {
        run_blocking(move || {
            let factor = if passkey {
                SecondFactor::Passkey(PasskeyAssertion {
                    challenge_id: &challenge_id,
                    credential: &credential,
                })
            } else if recovery {
                SecondFactor::RecoveryCode(&code)
            } else {
                SecondFactor::Totp(&code)
            };
            accounts.verify_mfa(&mfa_token, factor, &client)
        })
        .await
        .and_then(|r| r.map_err(ApiError::from))
    };
    match outcome {
        Ok(tokens) => Ok(visitor.signed_in(&tokens, &next)),
        // The step is over: start again from the password.
        Err(e) if e.code == "invalid_mfa_token" => visitor.form_again(
            &e,
            "login.html",
            context! { login => "", next => next },
            &[],
        ),
        Err(e) => {
            let rename: &[(&str, &str)] = if recovery {
                &[("code", "recovery_code")]
            } else {
                &[]
            };
            let method = if recovery { "recovery_code" } else { "totp" };
            visitor.form_again(
                &e,
                "login_mfa.html",
                second_step_context(&token, &next, method, &methods),
                rename,
            )
        }
    }
}

pub(super) async fn overview(signed_in: &SignedIn, extra: minijinja::Value) -> PageResult {
    let visitor = &signed_in.0;
    let accounts = visitor.state.accounts.clone();
    let user_id = signed_in.user().view.id.clone();
    let status = run_blocking(move || accounts.mfa_status(&user_id))
        .await
        .and_then(|r| r.map_err(ApiError::from))
        .map_err(|e| visitor.failure(e))?;
    let time = |t: &chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
    let passkeys: Vec<minijinja::Value> = status
        .passkeys
        .iter()
        .map(|p| {
            context! {
                id => p.id.clone(),
                name => p.name.clone(),
                created_at => time(&p.created_at),
                last_used_at => p.last_used_at.as_ref().map(time),
            }
        })
        .collect();
    visitor.page(
        "mfa.html",
        context! {
            totp => status.totp,
            recovery_codes_left => status.recovery_codes_left,
            passkeys => passkeys,
            ..extra
        },
    )
}

/// `GET /dashboard/mfa`: the user's second factors.
pub async fn show(signed_in: SignedIn) -> PageResult {
    overview(&signed_in, context! {}).await
}

/// A refusal on the overview (step-up needed, already enrolled, …).
pub(super) async fn overview_again(signed_in: &SignedIn, error: &ApiError) -> PageResult {
    let feedback = signed_in.0.feedback(error, &[]);
    overview(signed_in, context! { error => feedback.error }).await
}

fn qr_svg(uri: &str) -> String {
    match QrCode::new(uri.as_bytes()) {
        Ok(code) => {
            let image = code
                .render::<svg::Color<'_>>()
                .min_dimensions(200, 200)
                .quiet_zone(true)
                .build();
            // Inline in the page: without the XML declaration, and named.
            image
                .split_once("?>")
                .map_or(image.as_str(), |(_, svg)| svg)
                .replacen("<svg ", r#"<svg role="img" aria-labelledby="qr-label" "#, 1)
        }
        Err(e) => {
            tracing::error!(error = %e, "QR code could not be drawn");
            String::new()
        }
    }
}

/// `POST /dashboard/mfa/totp`: a new secret, shown as a QR code and as text.
pub async fn begin(signed_in: SignedIn, body: web::Bytes) -> PageResult {
    let visitor = &signed_in.0;
    posted(visitor, &body)?;
    let user = signed_in.user();
    let accounts = visitor.state.accounts.clone();
    let (user_id, session_id) = (user.view.id.clone(), user.session_id.clone());
    let enrolment = run_blocking(move || accounts.begin_totp(&user_id, &session_id))
        .await
        .and_then(|r| r.map_err(ApiError::from));
    match enrolment {
        Ok(enrolment) => enrol_page(visitor, &enrolment, None),
        Err(e) => overview_again(&signed_in, &e).await,
    }
}

fn enrol_page(
    visitor: &Visitor,
    enrolment: &accounts::TotpEnrolment,
    error: Option<&ApiError>,
) -> PageResult {
    let uri = enrolment.otpauth_uri.expose_secret();
    let page = context! {
        qr => minijinja::Value::from_safe_string(qr_svg(uri)),
        secret => enrolment.secret.expose_secret(),
        otpauth_uri => uri,
    };
    match error {
        Some(e) => visitor.form_again(e, "mfa_enrol.html", page, &[]),
        None => visitor.page("mfa_enrol.html", page),
    }
}

fn codes_page(visitor: &Visitor, codes: &[SecretString]) -> PageResult {
    let codes: Vec<String> = codes.iter().map(|c| c.expose_secret().to_owned()).collect();
    let text = codes.join("\n") + "\n";
    visitor.page(
        "mfa_codes.html",
        context! { codes => codes, codes_text => text },
    )
}

/// `POST /dashboard/mfa/totp/confirm`: the app's first code; then the
/// recovery codes, this once.
pub async fn confirm(signed_in: SignedIn, body: web::Bytes) -> PageResult {
    let visitor = &signed_in.0;
    let form = posted(visitor, &body)?;
    let user = signed_in.user();
    let code = form.text("code");
    let client = client_info(&visitor.req);
    let accounts = visitor.state.accounts.clone();
    let (user_id, session_id) = (user.view.id.clone(), user.session_id.clone());
    let confirmed = if code.chars().count() > crate::http::schema::CODE_MAX_CHARS {
        Err(ApiError::from(AccountsError::InvalidSecondFactor))
    } else {
        run_blocking(move || accounts.confirm_totp(&user_id, &session_id, &code, &client))
            .await
            .and_then(|r| r.map_err(ApiError::from))
    };
    match confirmed {
        Ok(codes) => codes_page(visitor, &codes),
        // The same secret again with the field's message (the secret came
        // with the form: it is the pending one, already stored sealed).
        Err(e) => {
            let secret = form.text("secret");
            let uri = form.text("otpauth_uri");
            let enrolment = accounts::TotpEnrolment {
                secret: SecretString::from(secret),
                otpauth_uri: SecretString::from(uri),
            };
            enrol_page(visitor, &enrolment, Some(&e))
        }
    }
}

/// `POST /dashboard/mfa/recovery-codes`: a new set; the old one dies.
pub async fn regenerate(signed_in: SignedIn, body: web::Bytes) -> PageResult {
    let visitor = &signed_in.0;
    posted(visitor, &body)?;
    let user = signed_in.user();
    let client = client_info(&visitor.req);
    let accounts = visitor.state.accounts.clone();
    let (user_id, session_id) = (user.view.id.clone(), user.session_id.clone());
    let codes =
        run_blocking(move || accounts.regenerate_recovery_codes(&user_id, &session_id, &client))
            .await
            .and_then(|r| r.map_err(ApiError::from));
    match codes {
        Ok(codes) => codes_page(visitor, &codes),
        Err(e) => overview_again(&signed_in, &e).await,
    }
}

/// `POST /dashboard/mfa/totp/remove`.
pub async fn remove(signed_in: SignedIn, body: web::Bytes) -> PageResult {
    let visitor = &signed_in.0;
    posted(visitor, &body)?;
    let user = signed_in.user();
    let client = client_info(&visitor.req);
    let accounts = visitor.state.accounts.clone();
    let (user_id, session_id) = (user.view.id.clone(), user.session_id.clone());
    let removed = run_blocking(move || accounts.remove_totp(&user_id, &session_id, &client))
        .await
        .and_then(|r| r.map_err(ApiError::from));
    match removed {
        Ok(()) => overview(&signed_in, context! { notice => "removed" }).await,
        Err(e) => overview_again(&signed_in, &e).await,
    }
}

#[derive(serde::Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// `GET /step-up`: authenticate again (after `step_up_required`) — the
/// app's code for users with a second factor, else the password.
pub async fn step_up_form(signed_in: SignedIn) -> PageResult {
    let visitor = &signed_in.0;
    let query: NextQuery = visitor.query()?;
    let next = safe_next(query.next.as_deref().unwrap_or("/dashboard")).to_owned();
    let accounts = visitor.state.accounts.clone();
    let user_id = signed_in.user().view.id.clone();
    let status = run_blocking(move || accounts.mfa_status(&user_id))
        .await
        .and_then(|r| r.map_err(ApiError::from))
        .map_err(|e| visitor.failure(e))?;
    visitor.page(
        "step_up.html",
        context! { next => next, factor => status.totp, passkey => !status.passkeys.is_empty() },
    )
}

/// `POST /step-up`: on success, back to where the visitor was.
pub async fn step_up(signed_in: SignedIn, body: web::Bytes) -> PageResult {
    let visitor = &signed_in.0;
    let form = posted(visitor, &body)?;
    let next = safe_next(&form.text("next")).to_owned();
    let user = signed_in.user();
    let (user_id, session_id) = (user.view.id.clone(), user.session_id.clone());
    let client = client_info(&visitor.req);
    let accounts = visitor.state.accounts.clone();
    let code = form.text("code");
    let challenge_id = form.text("challenge_id");
    let credential = passkey_answer(&form);
    let passkey = !challenge_id.is_empty();
    let factor = !code.is_empty();
    let password = form.secret("password");
    let stepped = if code.chars().count() > crate::http::schema::CODE_MAX_CHARS
        || password.expose_secret().chars().count() > crate::http::schema::PASSWORD_MAX_CHARS
    {
        Err(ApiError::from(AccountsError::InvalidSecondFactor))
    } else {
        run_blocking(move || {
            let proof = if passkey {
                accounts::StepUpProof::Factor(SecondFactor::Passkey(PasskeyAssertion {
                    challenge_id: &challenge_id,
                    credential: &credential,
                }))
            } else if factor {
                accounts::StepUpProof::Factor(SecondFactor::Totp(&code))
            } else {
                accounts::StepUpProof::Password(&password)
            };
            accounts.step_up(&user_id, &session_id, proof, &client)
        })
        .await
        .and_then(|r| r.map_err(ApiError::from))
    };
    match stepped {
        Ok(_) => Ok(visitor.proceed(&next)),
        Err(e) => {
            let e = if e.code == "invalid_credentials" {
                ApiError::validation("password", "is not your password")
            } else {
                e
            };
            visitor.form_again(
                &e,
                "step_up.html",
                context! { next => next, factor => factor && !passkey, passkey => passkey },
                &[],
            )
        }
    }
}

/// The passkey's answer a form carries (JSON text in `credential`); not
/// JSON: `null`, which no ceremony accepts.
pub(super) fn passkey_answer(form: &super::form::Form) -> serde_json::Value {
    serde_json::from_str(&form.text("credential")).unwrap_or_default()
}

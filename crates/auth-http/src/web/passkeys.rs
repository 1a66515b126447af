//! Passkeys in the pages: sign in with one (a button, and the browser's
//! autofill on the login page), add and remove them on the second-factor
//! page. The browser side is `static/passkeys.js`: it asks the two
//! `…/options` endpoints here for WebAuthn options (JSON, with the form's
//! CSRF field), then submits the page's form with the passkey's answer, so
//! the answers arrive as ordinary forms and get ordinary pages back. Every
//! rule is `accounts::passkeys`', as for the API.

use accounts::{PasskeyAssertion, PasskeyName, PasskeySignIn};
use actix_web::{HttpResponse, ResponseError, web};
use minijinja::context;

use super::mfa::{overview, overview_again, passkey_answer};
use super::public::posted;
use super::visitor::safe_next;
use super::{PageResult, SignedIn, Visitor};
use crate::http::error::ApiError;
use crate::http::extract::client_info;
use crate::http::run_blocking;

/// Options as JSON for the script, or the problem (`step_up_required`
/// sends it to the step-up page first).
fn options_json(outcome: Result<accounts::PasskeyCeremony, ApiError>) -> HttpResponse {
    match outcome {
        Ok(ceremony) => crate::http::passkeys::ceremony(ceremony),
        Err(e) => e.error_response(),
    }
}

/// `POST /login/passkey/options`: options to sign in (also for the second
/// step and the step-up, which send the answer to their own forms).
pub async fn sign_in_options(visitor: Visitor, body: web::Bytes) -> PageResult {
    let form = posted(&visitor, &body)?;
    let login = form.text("login");
    let client = client_info(&visitor.req);
    let accounts = visitor.state.accounts.clone();
    let outcome = if login.chars().count() > crate::http::schema::LOGIN_MAX_CHARS {
        Err(ApiError::validation("login", "is too long"))
    } else {
        run_blocking(move || {
            let who = if login.is_empty() {
                PasskeySignIn::Anyone
            } else {
                PasskeySignIn::Login(&login)
            };
            accounts.begin_passkey_sign_in(who, &client)
        })
        .await
        .and_then(|r| r.map_err(ApiError::from))
    };
    Ok(options_json(outcome))
}

/// `POST /login/passkey`: the passkey's answer → signed in.
pub async fn sign_in(visitor: Visitor, body: web::Bytes) -> PageResult {
    let form = posted(&visitor, &body)?;
    let next = safe_next(&form.text("next")).to_owned();
    let challenge_id = form.text("challenge_id");
    let credential = passkey_answer(&form);
    let client = client_info(&visitor.req);
    let accounts = visitor.state.accounts.clone();
    let outcome = run_blocking(move || {
        accounts.passkey_login(
            PasskeyAssertion {
                challenge_id: &challenge_id,
                credential: &credential,
            },
            &client,
        )
    })
    .await
    .and_then(|r| r.map_err(ApiError::from));
    match outcome {
        Ok(tokens) => {
            visitor.state.metrics.record_login("success");
            Ok(visitor.signed_in(&tokens, &next))
        }
        Err(e) => visitor.form_again(
            &e,
            "login.html",
            context! { login => "", next => next },
            &[],
        ),
    }
}

/// `POST /dashboard/mfa/passkeys/options`: options to add a passkey.
pub async fn register_options(signed_in: SignedIn, body: web::Bytes) -> PageResult {
    let visitor = &signed_in.0;
    posted(visitor, &body)?;
    let user = signed_in.user();
    let accounts = visitor.state.accounts.clone();
    let (user_id, session_id) = (user.view.id.clone(), user.session_id.clone());
    let outcome = run_blocking(move || accounts.begin_passkey_registration(&user_id, &session_id))
        .await
        .and_then(|r| r.map_err(ApiError::from));
    Ok(options_json(outcome))
}

/// `POST /dashboard/mfa/passkeys`: the new passkey's answer and its name.
pub async fn register(signed_in: SignedIn, body: web::Bytes) -> PageResult {
    let visitor = &signed_in.0;
    let form = posted(visitor, &body)?;
    let user = signed_in.user();
    let name = match PasskeyName::parse(&form.text("name")) {
        Ok(name) => name,
        Err(why) => return overview_again(&signed_in, &ApiError::validation("name", why)).await,
    };
    let challenge_id = form.text("challenge_id");
    let credential = passkey_answer(&form);
    let client = client_info(&visitor.req);
    let accounts = visitor.state.accounts.clone();
    let (user_id, session_id) = (user.view.id.clone(), user.session_id.clone());
    let outcome = run_blocking(move || {
        accounts.finish_passkey_registration(
            &user_id,
            &session_id,
            &challenge_id,
            &name,
            &credential,
            &client,
        )
    })
    .await
    .and_then(|r| r.map_err(ApiError::from));
    match outcome {
        Ok(_) => overview(&signed_in, context! { notice => "passkey_added" }).await,
        Err(e) => overview_again(&signed_in, &e).await,
    }
}

/// `POST /dashboard/mfa/passkeys/{id}/remove`.
pub async fn remove(signed_in: SignedIn, id: web::Path<String>, body: web::Bytes) -> PageResult {
    let visitor = &signed_in.0;
    posted(visitor, &body)?;
    let user = signed_in.user();
    let client = client_info(&visitor.req);
    let accounts = visitor.state.accounts.clone();
    let (user_id, session_id) = (user.view.id.clone(), user.session_id.clone());
    let id = id.into_inner();
    let removed =
        run_blocking(move || accounts.remove_passkey(&user_id, &session_id, &id, &client))
            .await
            .and_then(|r| r.map_err(ApiError::from));
    match removed {
        Ok(()) => overview(&signed_in, context! { notice => "passkey_removed" }).await,
        Err(e) => overview_again(&signed_in, &e).await,
    }
}

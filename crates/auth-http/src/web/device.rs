//! The user's side of the device authorization grant (RFC 8628): type the
//! code a device shows, see which application asks for what, approve or
//! deny. The rules (code form, expiry, attempt limit, single decision) are
//! `accounts::device`'s.

use actix_web::web;
use minijinja::context;

use super::public::posted;
use super::{PageResult, SignedIn};
use crate::http::error::ApiError;
use crate::http::extract::{audit_context, client_info};
use crate::http::run_blocking;

#[derive(serde::Deserialize)]
pub struct DeviceQuery {
    user_code: Option<String>,
}

/// `GET /device`: the code form (filled in from `verification_uri_complete`).
pub async fn form(signed_in: SignedIn) -> PageResult {
    let query: DeviceQuery = signed_in.0.query()?;
    let code = query.user_code.clone().unwrap_or_default();
    let code: String = code.chars().take(32).collect();
    signed_in.0.page(
        "device.html",
        context! { code => code, client => (), outcome => () },
    )
}

/// `POST /device`: the typed code; the confirmation, or the form again.
pub async fn lookup(signed_in: SignedIn, body: web::Bytes) -> PageResult {
    let visitor = &signed_in.0;
    let form = posted(visitor, &body)?;
    let code = form.text("code");
    let typed = code.clone();
    let accounts = visitor.state.accounts.clone();
    let origin = client_info(&visitor.req);
    let found = run_blocking(move || accounts.pending_device(&typed, &origin))
        .await
        .and_then(|r| r.map_err(ApiError::from));
    match found {
        Ok(pending) => visitor.page(
            "device.html",
            context! {
                code => pending.user_code,
                client => pending.client_name,
                scopes => pending.scopes.into_iter().filter(|s| s != "openid").collect::<Vec<_>>(),
                outcome => (),
            },
        ),
        Err(e) => visitor.form_again(
            &e,
            "device.html",
            context! { code => code, client => (), outcome => () },
            &[],
        ),
    }
}

/// `POST /device/confirm`: the user's answer.
pub async fn confirm(signed_in: SignedIn, body: web::Bytes) -> PageResult {
    let visitor = &signed_in.0;
    let form = posted(visitor, &body)?;
    let approve = form.text("decision") == "allow";
    let code = form.text("code");
    let user = signed_in.user();
    let (user_id, session_id) = (user.view.id.clone(), user.session_id.clone());
    let context = audit_context(&visitor.req, Some(&user_id));
    let accounts = visitor.state.accounts.clone();
    let typed = code.clone();
    let decided = run_blocking(move || {
        accounts.decide_device(&typed, &user_id, &session_id, approve, &context)
    })
    .await
    .and_then(|r| r.map_err(ApiError::from));
    match decided {
        Ok(()) => visitor.page(
            "device.html",
            context! {
                code => code,
                client => (),
                outcome => if approve { "approved" } else { "denied" },
            },
        ),
        Err(e) => visitor.form_again(
            &e,
            "device.html",
            context! { code => code, client => (), outcome => () },
            &[],
        ),
    }
}

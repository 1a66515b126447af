//! The signed-in user's dashboard: profile, sessions, personal API tokens
//! and password; and logging out.

use actix_web::http::StatusCode;
use actix_web::web;
use chrono::NaiveDateTime;
use minijinja::{Value, context};
use secrecy::ExposeSecret;

use super::public::{new_password, posted};
use super::visitor::safe_next;
use super::{PageResult, SignedIn, Visitor};
use crate::http::error::ApiError;
use crate::http::extract::audit_context;
use crate::http::run_blocking;
use crate::http::{api_tokens, flows, sessions};

pub(super) fn time(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// Everything the dashboard shows, with the page's own additions.
async fn dashboard_page(signed_in: &SignedIn, extra: Value) -> Result<Value, ApiError> {
    let visitor = &signed_in.0;
    let user = signed_in.user();
    let accounts = visitor.state.accounts.clone();
    let user_id = user.view.id.clone();
    let (sessions, tokens, consents) =
        run_blocking(move || -> Result<_, accounts::AccountsError> {
            Ok((
                accounts.sessions_of(&user_id)?,
                accounts.list_api_tokens(&user_id)?,
                accounts.consents_of(&user_id)?,
            ))
        })
        .await??;
    let consents: Vec<_> = consents
        .into_iter()
        .map(|c| {
            context! {
                client_id => c.client_id,
                client_name => c.client_name,
                scopes => c.scopes,
                granted_at => time(c.granted_at),
            }
        })
        .collect();
    let sessions: Vec<_> = sessions
        .into_iter()
        .map(|s| {
            context! {
                current => s.id == user.session_id,
                id => s.id,
                created_at => time(s.created_at),
                last_used_at => time(s.last_used_at),
                user_agent => s.user_agent.unwrap_or_default(),
                ip => s.ip.unwrap_or_default(),
                application => s.application,
            }
        })
        .collect();
    let tokens: Vec<_> = tokens
        .into_iter()
        .map(|t| {
            context! {
                id => t.id,
                name => t.name,
                permissions => t.permissions,
                created_at => time(t.created_at),
                expires_at => time(t.expires_at),
                last_used_at => t.last_used_at.map(time),
            }
        })
        .collect();
    let profile = &user.view;
    let defaults = context! {
        profile => context! {
            email => profile.email.clone(),
            username => profile.username.clone(),
            name => profile.name.clone(),
            roles => profile.roles.clone(),
            permissions => profile.permissions.clone(),
            organization_id => profile.organization_id.clone(),
        },
        sessions => sessions,
        tokens => tokens,
        consents => consents,
        notice => (),
        token_name => "",
        token_permissions => Vec::<String>::new(),
        token_days => "30",
    };
    // The page's own values win over the defaults.
    Ok(context! { ..extra, ..defaults })
}

#[derive(serde::Deserialize)]
pub struct DashboardQuery {
    notice: Option<String>,
}

pub async fn dashboard(signed_in: SignedIn) -> PageResult {
    let query: DashboardQuery = signed_in.0.query()?;
    // Only notices a redirect of ours sends; anything else is ignored.
    let notice = query.notice.as_deref().filter(|n| *n == "password_due");
    let page = dashboard_page(&signed_in, context! { notice => notice })
        .await
        .map_err(|e| signed_in.0.failure(e))?;
    signed_in.0.page("dashboard.html", page)
}

/// The dashboard again with a form's problems next to its fields.
async fn dashboard_again(signed_in: &SignedIn, error: &ApiError, extra: Value) -> PageResult {
    let page = dashboard_page(signed_in, extra)
        .await
        .map_err(|e| signed_in.0.failure(e))?;
    let rename = [("password", "new_password")];
    signed_in
        .0
        .form_again(error, "dashboard.html", page, &rename)
}

/// Creates an API token and shows its secret this once (no redirect: the
/// secret must not travel in a URL or be stored for a later page).
pub async fn create_token(signed_in: SignedIn, body: web::Bytes) -> PageResult {
    let visitor = &signed_in.0;
    let form = posted(visitor, &body)?;
    let user = signed_in.user();
    let name = form.text("name");
    let permissions = form.all("permissions");
    let days = match form.text("expires_in_days").as_str() {
        "" => Ok(None),
        text => text
            .parse::<i64>()
            .map(Some)
            .map_err(|_| ApiError::validation("expires_in_days", "is not a number of days")),
    };
    let created = match days {
        Ok(days) => {
            let accounts = visitor.state.accounts.clone();
            let context = audit_context(&visitor.req, Some(&user.view.id));
            let (owner, token_name) = (user.view.id.clone(), name.clone());
            let session_id = user.session_id.clone();
            run_blocking(move || {
                accounts.create_api_token(
                    &owner,
                    &session_id,
                    &token_name,
                    &permissions,
                    days,
                    &context,
                )
            })
            .await
            .and_then(|r| r.map_err(ApiError::from))
        }
        Err(e) => Err(e),
    };
    match created {
        Ok(created) => visitor.page_with_status(
            StatusCode::CREATED,
            "token_created.html",
            context! {
                token => created.token.expose_secret(),
                name => created.view.name,
                permissions => created.view.permissions,
                expires_at => time(created.view.expires_at),
            },
        ),
        Err(e) => {
            let typed = context! {
                token_name => name,
                token_permissions => form.all("permissions"),
                token_days => form.text("expires_in_days"),
            };
            dashboard_again(&signed_in, &e, typed).await
        }
    }
}

pub async fn revoke_token(
    signed_in: SignedIn,
    path: web::Path<String>,
    body: web::Bytes,
) -> PageResult {
    let visitor = &signed_in.0;
    posted(visitor, &body)?;
    let owner = signed_in.user().view.id.clone();
    api_tokens::revoke_own_token(&visitor.state, &visitor.req, owner, path.into_inner())
        .await
        .map_err(|e| visitor.failure(e))?;
    Ok(visitor.redirect("/dashboard#tokens"))
}

/// Signs one device out; signing out this browser's own session logs out.
pub async fn end_session(
    signed_in: SignedIn,
    path: web::Path<String>,
    body: web::Bytes,
) -> PageResult {
    let visitor = &signed_in.0;
    posted(visitor, &body)?;
    let user = signed_in.user();
    let session_id = path.into_inner();
    let own = session_id == user.session_id;
    sessions::end_own_session(&visitor.state, &visitor.req, &user.view.id, session_id)
        .await
        .map_err(|e| visitor.failure(e))?;
    if own {
        Ok(visitor.signed_out("/login"))
    } else {
        Ok(visitor.redirect("/dashboard#sessions"))
    }
}

/// Withdraws a consent: the application's sessions of this user end, and
/// it must ask again.
pub async fn revoke_consent(
    signed_in: SignedIn,
    path: web::Path<String>,
    body: web::Bytes,
) -> PageResult {
    let visitor = &signed_in.0;
    posted(visitor, &body)?;
    let user_id = signed_in.user().view.id.clone();
    let client_id = path.into_inner();
    let accounts = visitor.state.accounts.clone();
    let context = audit_context(&visitor.req, Some(&user_id));
    run_blocking(move || accounts.revoke_consent(&user_id, &client_id, &context))
        .await
        .and_then(|r| r.map_err(ApiError::from))
        .map_err(|e| visitor.failure(e))?;
    Ok(visitor.redirect("/dashboard#apps"))
}

/// "Sign out everywhere", this browser included.
pub async fn end_all_sessions(signed_in: SignedIn, body: web::Bytes) -> PageResult {
    let visitor = &signed_in.0;
    posted(visitor, &body)?;
    let user_id = signed_in.user().view.id.clone();
    let accounts = visitor.state.accounts.clone();
    let context = audit_context(&visitor.req, Some(&user_id));
    run_blocking(move || accounts.logout_all(&user_id, &context))
        .await
        .and_then(|r| r.map_err(ApiError::from))
        .map_err(|e| visitor.failure(e))?;
    Ok(visitor.signed_out("/login"))
}

pub async fn change_password(signed_in: SignedIn, body: web::Bytes) -> PageResult {
    let visitor = &signed_in.0;
    let form = posted(visitor, &body)?;
    let user = signed_in.user();
    let changed = match new_password(&form, "new_password") {
        Ok(password) => flows::change_own_password(
            &visitor.state,
            user.view.id.clone(),
            user.session_id.clone(),
            form.secret("current_password"),
            password,
        )
        .await
        .map_err(|e| match e.code {
            // On this form a wrong password is about the field above.
            "invalid_credentials" => {
                ApiError::validation("current_password", "is not your password")
            }
            _ => e,
        }),
        Err(e) => Err(e),
    };
    match changed {
        Ok(()) => {
            let page = dashboard_page(&signed_in, context! { notice => "password_changed" })
                .await
                .map_err(|e| visitor.failure(e))?;
            visitor.page("dashboard.html", page)
        }
        Err(e) => dashboard_again(&signed_in, &e, context! {}).await,
    }
}

/// Ends this browser's session.
pub async fn logout(visitor: Visitor, body: web::Bytes) -> PageResult {
    // Without a live session there is nothing to end (and nothing a forged
    // form could do): just forget the cookie.
    let Some(user) = &visitor.user else {
        return Ok(visitor.signed_out("/login"));
    };
    let form = posted(&visitor, &body)?;
    // Where to go next: the login page, or (signing in as another account
    // from the account chooser) the login page on the way back to a
    // relying party.
    let next = safe_next(&form.text("next")).to_owned();
    let next = if next == "/login" || next.starts_with("/login?") {
        next
    } else {
        "/login".to_owned()
    };
    let accounts = visitor.state.accounts.clone();
    let (user_id, session_id) = (user.view.id.clone(), user.session_id.clone());
    let context = audit_context(&visitor.req, Some(&user_id));
    run_blocking(move || accounts.logout(&user_id, &session_id, &context))
        .await
        .and_then(|r| r.map_err(ApiError::from))
        .map_err(|e| visitor.failure(e))?;
    Ok(visitor.signed_out(&next))
}

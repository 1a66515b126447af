//! Operator pages: the registration queue, users and the audit log.
//! Organization admins see the users of their own organization only; the
//! accounts layer enforces that, as it does for the API.

use accounts::{Actor, Role, UserUpdate, UserView};
use actix_web::http::StatusCode;
use actix_web::web;
use minijinja::{Value, context};
use serde::Deserialize;

use super::account::time;
use super::public::posted;
use super::{PageError, PageResult, SignedIn};
use crate::http::admin;
use crate::http::error::ApiError;
use crate::http::extract::audit_context;
use crate::http::paging::{PAGE, next_cursor};
use crate::http::run_blocking;

/// The signed-in user as an actor, if their role allows `admin_only` (or
/// any management when false).
fn actor(signed_in: &SignedIn, admin_only: bool) -> Result<Actor, PageError> {
    let user = signed_in.user();
    let allowed = if admin_only {
        user.is_admin()
    } else {
        user.is_manager()
    };
    if !allowed {
        return Err(signed_in.0.failure(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "your role does not allow this",
        )));
    }
    Ok(Actor {
        user_id: user.view.id.clone(),
        session_id: Some(user.session_id.clone()),
        roles: user.view.roles.clone(),
        perms: user.view.permissions.clone(),
        org: user.view.organization_id.clone(),
        context: audit_context(&signed_in.0.req, Some(&user.view.id)),
    })
}

/// The permission catalog as checkbox groups, with `checked` ticked.
fn permission_groups(signed_in: &SignedIn, checked: &[String]) -> Vec<Value> {
    signed_in
        .0
        .pages
        .permissions
        .categories()
        .iter()
        .map(|(category, permissions)| {
            let items: Vec<_> = permissions
                .iter()
                .map(|p| context! { name => p, checked => checked.contains(p) })
                .collect();
            context! { category => category, permissions => items }
        })
        .collect()
}

fn offset(cursor: Option<&str>) -> i64 {
    cursor
        .and_then(|c| c.parse::<i64>().ok())
        .filter(|n| *n >= 0)
        .unwrap_or(0)
}

fn failure(signed_in: &SignedIn) -> impl Fn(ApiError) -> PageError + '_ {
    |e| signed_in.0.failure(e)
}

/// What a refused form shows again: the problems, with what was typed.
fn refused(signed_in: &SignedIn, error: &ApiError, typed: Value) -> Value {
    let feedback = signed_in.0.feedback(error, &[]);
    context! { error => feedback.error, fields => feedback.fields, ..typed }
}

/// The page under the refusal's status (422, 409 …), so scripts see it too.
fn with_status(page: PageResult, status: StatusCode) -> PageResult {
    page.map(|mut response| {
        *response.status_mut() = status;
        response
    })
}

pub async fn index(signed_in: SignedIn) -> PageResult {
    let target = if signed_in.user().is_admin() {
        "/admin/registrations"
    } else {
        actor(&signed_in, false)?;
        "/admin/users"
    };
    Ok(signed_in.0.redirect(target))
}

// ---- registrations ----

#[derive(Deserialize)]
pub struct RegistrationQuery {
    status: Option<String>,
    cursor: Option<String>,
}

fn registration_row(r: accounts::RegistrationView) -> Value {
    context! {
        id => r.id,
        company_name => r.company_name,
        contact_name => r.contact_name,
        contact_email => r.contact_email,
        contact_phone => r.contact_phone,
        status => r.status,
        created_at => time(r.created_at),
        decided_at => r.decided_at.map(time),
        decision_note => r.decision_note,
    }
}

/// The queue: pending registrations first (the default tab), oldest first.
pub async fn registrations(signed_in: SignedIn) -> PageResult {
    let query: RegistrationQuery = signed_in.0.query()?;
    actor(&signed_in, true)?;
    let status = query
        .status
        .as_deref()
        .filter(|s| matches!(*s, "approved" | "rejected"))
        .unwrap_or("pending_review")
        .to_owned();
    let start = offset(query.cursor.as_deref());
    let accounts = signed_in.0.state.accounts.clone();
    let filter = status.clone();
    let items = run_blocking(move || accounts.list_registrations(Some(&filter), start, PAGE))
        .await
        .and_then(|r| r.map_err(ApiError::from))
        .map_err(failure(&signed_in))?;
    let next = next_cursor(start, items.len(), PAGE);
    let items: Vec<_> = items.into_iter().map(registration_row).collect();
    signed_in.0.page(
        "admin_registrations.html",
        context! { status => status, items => items, next => next },
    )
}

async fn registration_page(signed_in: &SignedIn, id: String, extra: Value) -> PageResult {
    let accounts = signed_in.0.state.accounts.clone();
    let found = run_blocking(move || accounts.registration(&id))
        .await
        .and_then(|r| r.map_err(ApiError::from))
        .and_then(|r| r.ok_or_else(|| accounts::AccountsError::RegistrationNotFound.into()))
        .map_err(failure(signed_in))?;
    let defaults = context! {
        registration => registration_row(found),
        groups => permission_groups(signed_in, &[]),
        reason => "",
        note => "",
    };
    // The page's own values win over the defaults.
    let page = context! { ..extra, ..defaults };
    signed_in.0.page("admin_registration.html", page)
}

pub async fn registration(signed_in: SignedIn, path: web::Path<String>) -> PageResult {
    actor(&signed_in, true)?;
    registration_page(&signed_in, path.into_inner(), context! {}).await
}

pub async fn approve(signed_in: SignedIn, path: web::Path<String>, body: web::Bytes) -> PageResult {
    let actor = actor(&signed_in, true)?;
    let form = posted(&signed_in.0, &body)?;
    let id = path.into_inner();
    let permissions = form.all("permissions");
    let note = form.text("note");
    let locale = signed_in.0.locale;
    let accounts = signed_in.0.state.accounts.clone();
    let (registration_id, chosen, note_text) = (id.clone(), permissions.clone(), note.clone());
    let approved = run_blocking(move || {
        let note = (!note_text.is_empty()).then_some(note_text.as_str());
        accounts.approve_registration(&actor, &registration_id, &chosen, note, locale)
    })
    .await
    .and_then(|r| r.map_err(ApiError::from));
    match approved {
        Ok(_) => Ok(signed_in.0.redirect(&format!("/admin/registrations/{id}"))),
        Err(e) if e.status == StatusCode::NOT_FOUND => Err(signed_in.0.failure(e)),
        Err(e) => {
            let typed = context! {
                groups => permission_groups(&signed_in, &permissions),
                note => note,
            };
            let page = registration_page(&signed_in, id, refused(&signed_in, &e, typed));
            with_status(page.await, e.status)
        }
    }
}

pub async fn reject(signed_in: SignedIn, path: web::Path<String>, body: web::Bytes) -> PageResult {
    let actor = actor(&signed_in, true)?;
    let form = posted(&signed_in.0, &body)?;
    let id = path.into_inner();
    let reason = form.text("reason");
    let locale = signed_in.0.locale;
    let accounts = signed_in.0.state.accounts.clone();
    let (registration_id, why) = (id.clone(), reason.clone());
    let rejected =
        run_blocking(move || accounts.reject_registration(&actor, &registration_id, &why, locale))
            .await
            .and_then(|r| r.map_err(ApiError::from));
    match rejected {
        Ok(_) => Ok(signed_in.0.redirect(&format!("/admin/registrations/{id}"))),
        Err(e) if e.status == StatusCode::NOT_FOUND => Err(signed_in.0.failure(e)),
        Err(e) => {
            let typed = context! { reason => reason };
            let page = registration_page(&signed_in, id, refused(&signed_in, &e, typed));
            with_status(page.await, e.status)
        }
    }
}

// ---- users ----

#[derive(Deserialize)]
pub struct UserQuery {
    q: Option<String>,
    cursor: Option<String>,
}

fn user_row(u: &UserView) -> Value {
    context! {
        id => u.id.clone(),
        email => u.email.clone(),
        username => u.username.clone(),
        name => u.name.clone(),
        status => u.status.clone(),
        roles => u.roles.clone(),
        permissions => u.permissions.clone(),
        created_at => time(u.created_at),
    }
}

pub async fn users(signed_in: SignedIn) -> PageResult {
    let query: UserQuery = signed_in.0.query()?;
    let actor = actor(&signed_in, false)?;
    let q: String = query
        .q
        .clone()
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect();
    let start = offset(query.cursor.as_deref());
    let accounts = signed_in.0.state.accounts.clone();
    let search = q.clone();
    let users = run_blocking(move || {
        let q = (!search.is_empty()).then_some(search.as_str());
        accounts.search_users(&actor, q, start, PAGE)
    })
    .await
    .and_then(|r| r.map_err(ApiError::from))
    .map_err(failure(&signed_in))?;
    let next = next_cursor(start, users.len(), PAGE);
    let items: Vec<_> = users.iter().map(user_row).collect();
    signed_in.0.page(
        "admin_users.html",
        context! { q => q, items => items, next => next },
    )
}

/// The user, if this actor may see them (another organization's user does
/// not exist for an organization admin).
async fn visible_user(
    signed_in: &SignedIn,
    actor: &Actor,
    id: String,
) -> Result<UserView, PageError> {
    let accounts = signed_in.0.state.accounts.clone();
    run_blocking(move || accounts.user_view(&id))
        .await
        .and_then(|r| r.map_err(ApiError::from))
        .and_then(|u| {
            u.filter(|u| actor.may_see(u.organization_id.as_deref()))
                .ok_or_else(|| accounts::AccountsError::UserNotFound.into())
        })
        .map_err(failure(signed_in))
}

fn role_boxes(checked: &[String]) -> Vec<Value> {
    Role::ALL
        .iter()
        .map(
            |r| context! { name => r.as_str(), checked => checked.iter().any(|x| x == r.as_str()) },
        )
        .collect()
}

fn user_page(signed_in: &SignedIn, user: &UserView, extra: Value) -> PageResult {
    let defaults = context! {
        target => user_row(user),
        disabled => user.status == "disabled",
        must_change_password => user.must_change_password,
        roles => role_boxes(&user.roles),
        groups => permission_groups(signed_in, &user.permissions),
        notice => (),
    };
    // The page's own values win over the defaults.
    let page = context! { ..extra, ..defaults };
    signed_in.0.page("admin_user.html", page)
}

pub async fn user(signed_in: SignedIn, path: web::Path<String>) -> PageResult {
    let actor = actor(&signed_in, false)?;
    let user = visible_user(&signed_in, &actor, path.into_inner()).await?;
    user_page(&signed_in, &user, context! {})
}

/// `Some(wanted)` only when it differs from `current`: the form always sends
/// the whole set, and an unchanged set must not need authority over it (an
/// organization admin may disable a member who holds a permission the
/// admin doesn't).
fn changed(mut wanted: Vec<String>, current: &[String]) -> Option<Vec<String>> {
    let mut current = current.to_vec();
    wanted.sort();
    wanted.dedup();
    current.sort();
    (wanted != current).then_some(wanted)
}

/// Roles, permissions and status from the form; only what changed is sent.
pub async fn update_user(
    signed_in: SignedIn,
    path: web::Path<String>,
    body: web::Bytes,
) -> PageResult {
    let actor = actor(&signed_in, false)?;
    let form = posted(&signed_in.0, &body)?;
    let current = visible_user(&signed_in, &actor, path.into_inner()).await?;
    let (roles, permissions) = (form.all("roles"), form.all("permissions"));
    let (disabled, must_change) = (
        form.checked("disabled"),
        form.checked("must_change_password"),
    );
    let update = UserUpdate {
        roles: changed(roles.clone(), &current.roles),
        permissions: changed(permissions.clone(), &current.permissions),
        disabled: (disabled != (current.status == "disabled")).then_some(disabled),
        must_change_password: (must_change != current.must_change_password).then_some(must_change),
    };
    let accounts = signed_in.0.state.accounts.clone();
    let (acting, target) = (actor.clone(), current.id.clone());
    let updated = run_blocking(move || accounts.update_user(&acting, &target, update))
        .await
        .and_then(|r| r.map_err(ApiError::from));
    match updated {
        Ok((user, _)) => user_page(&signed_in, &user, context! { notice => "saved" }),
        Err(e) if e.status == StatusCode::NOT_FOUND => Err(signed_in.0.failure(e)),
        Err(e) => {
            // What was ticked stays ticked.
            let typed = context! {
                roles => role_boxes(&roles),
                groups => permission_groups(&signed_in, &permissions),
                disabled => disabled,
                must_change_password => must_change,
            };
            let page = user_page(&signed_in, &current, refused(&signed_in, &e, typed));
            with_status(page, e.status)
        }
    }
}

// ---- audit log ----

#[derive(Deserialize)]
pub struct AuditQuery {
    event: Option<String>,
    actor: Option<String>,
    subject: Option<String>,
    before: Option<String>,
}

pub async fn audit(signed_in: SignedIn) -> PageResult {
    let query: AuditQuery = signed_in.0.query()?;
    actor(&signed_in, true)?;
    let text = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(|v| v.chars().take(200).collect::<String>())
    };
    let filter = accounts::AuditQuery {
        event: text(&query.event),
        actor: text(&query.actor),
        subject: text(&query.subject),
        organization_id: None,
    };
    let before = query.before.as_deref().and_then(|b| b.parse::<i64>().ok());
    let shown = context! {
        event => filter.event.clone().unwrap_or_default(),
        actor => filter.actor.clone().unwrap_or_default(),
        subject => filter.subject.clone().unwrap_or_default(),
    };
    let (rows, next) = admin::audit_page(&signed_in.0.state, filter, before)
        .await
        .map_err(failure(&signed_in))?;
    let items: Vec<_> = rows
        .into_iter()
        .map(|r| {
            context! {
                at => time(r.at),
                event => r.event,
                actor => r.actor,
                subject => r.subject,
                ip => r.ip,
                details => r.details.to_string(),
            }
        })
        .collect();
    signed_in.0.page(
        "admin_audit.html",
        context! { filter => shown, items => items, next => next },
    )
}

/// `GET /admin/clients`: registered clients (services and relying
/// parties), operators only. Registering one stays a CLI step: its secret
/// is shown once, on the operator's terminal.
pub async fn clients(signed_in: SignedIn) -> PageResult {
    actor(&signed_in, true)?;
    let accounts = signed_in.0.state.accounts.clone();
    let listed = run_blocking(move || accounts.list_clients())
        .await
        .and_then(|r| r.map_err(ApiError::from))
        .map_err(failure(&signed_in))?;
    let items: Vec<_> = listed
        .into_iter()
        .map(|c| {
            let rp = c.relying_party;
            context! {
                id => rp.id,
                name => rp.name,
                redirect_uris => rp.redirect_uris,
                scopes => rp.scopes,
                public => rp.public,
                first_party => rp.first_party,
                backchannel => rp.backchannel_logout_uri.is_some(),
                created_at => time(c.created_at),
                removed_at => c.revoked_at.map(time),
            }
        })
        .collect();
    signed_in
        .0
        .page("admin_clients.html", context! { items => items })
}

/// `POST /admin/clients/{id}/remove`: its credentials stop working and
/// every session it holds ends.
pub async fn remove_client(
    signed_in: SignedIn,
    path: web::Path<String>,
    body: web::Bytes,
) -> PageResult {
    let actor = actor(&signed_in, true)?;
    posted(&signed_in.0, &body)?;
    let client_id = path.into_inner();
    let accounts = signed_in.0.state.accounts.clone();
    run_blocking(move || accounts.remove_client(&client_id, &actor.context))
        .await
        .and_then(|r| r.map_err(ApiError::from))
        .map_err(failure(&signed_in))?;
    Ok(signed_in.0.redirect("/admin/clients"))
}

//! The shared rate limits (`accounts::throttle`) at the HTTP edge: which
//! requests count against which limit, keyed by the client IP
//! (`extract::client_ip`) and the address or login name in the request.

use accounts::{AccountsError, Limit, Throttle};
use actix_web::HttpRequest;

use super::error::ApiError;
use super::extract::client_ip;
use crate::blocking::run_blocking;
use crate::state::AppState;

type Events = Vec<(Limit, String)>;
/// `Throttle::check`, `take` or `charge`.
type Apply = fn(&Throttle, &[(Limit, &str)]) -> Result<(), AccountsError>;

fn ip(req: &HttpRequest) -> String {
    client_ip(req).map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
}

/// A request that sends mail to `address`: counts per address and per IP;
/// 429 + Retry-After when either is exhausted (and then nothing is sent).
pub async fn mail_request(
    state: &AppState,
    req: &HttpRequest,
    address: &str,
) -> Result<(), ApiError> {
    let events = vec![
        (Limit::MailPerIp, ip(req)),
        (Limit::MailPerAddress, address.to_owned()),
    ];
    run(state, "mail", events, Throttle::take).await
}

/// A guess at a code (email verification, organization, password reset).
pub async fn code_attempt(state: &AppState, req: &HttpRequest) -> Result<(), ApiError> {
    run(
        state,
        "code",
        vec![(Limit::CodeAttemptsPerIp, ip(req))],
        Throttle::take,
    )
    .await
}

/// The login limits count failures only, for the login name as typed
/// (known or not, so the limit reveals nothing) and the IP.
pub struct LoginAttempt {
    events: Events,
}

impl LoginAttempt {
    /// 429 if this login name or IP has failed too often lately; the
    /// password is then not even checked.
    pub async fn admit(
        state: &AppState,
        req: &HttpRequest,
        login: &str,
    ) -> Result<LoginAttempt, ApiError> {
        let events = vec![
            (Limit::LoginFailuresPerAccount, login.to_owned()),
            (Limit::LoginFailuresPerIp, ip(req)),
        ];
        run(state, "login", events.clone(), Throttle::check).await?;
        Ok(LoginAttempt { events })
    }

    /// Counts a failed attempt. A failure to record it is logged, not
    /// answered: the client's request failed for its own reason already.
    pub async fn failed(self, state: &AppState) {
        if let Err(e) = run(state, "login", self.events, Throttle::charge).await {
            tracing::warn!(error = %e, "could not record a failed login");
        }
    }
}

/// Applies the limits; a refusal is counted in `/metrics` under `kind`.
async fn run(
    state: &AppState,
    kind: &'static str,
    events: Events,
    apply: Apply,
) -> Result<(), ApiError> {
    let throttle = state.throttle.clone();
    let outcome = run_blocking(move || {
        let events: Vec<(Limit, &str)> = events.iter().map(|(l, s)| (*l, s.as_str())).collect();
        apply(&throttle, &events)
    })
    .await?;
    if let Err(AccountsError::Throttled { .. }) = &outcome {
        state.metrics.record_throttled(kind);
        if kind == "login" {
            state.metrics.record_login("throttled");
        }
    }
    outcome?;
    Ok(())
}

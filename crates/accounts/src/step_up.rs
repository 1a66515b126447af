//! Which operations need a recent authentication ("step-up"), decided here
//! and nowhere else: the sensitive operations call these checks themselves,
//! with the caller's session, so no front-end can forget one. Front-ends
//! only turn [`AccountsError::StepUpRequired`] into their answer (403
//! `step_up_required` on the API; on the pages, a link to authenticate
//! again and carry on).
//!
//! The sensitive operations (the contract's list):
//! - second-factor changes: [`begin_totp`](Accounts::begin_totp),
//!   [`remove_totp`](Accounts::remove_totp),
//!   [`regenerate_recovery_codes`](Accounts::regenerate_recovery_codes)
//!   (in `mfa`),
//!   [`begin_passkey_registration`](Accounts::begin_passkey_registration),
//!   [`remove_passkey`](Accounts::remove_passkey) (in `passkeys`), each
//!   calling [`check_step_up`](Accounts::check_step_up) first;
//! - API token creation: [`create_api_token`](Accounts::create_api_token);
//! - changes of roles or permissions:
//!   [`update_user`](Accounts::update_user) when the update names roles or
//!   permissions or enables an account ([`Accounts::check_actor_step_up`]), and
//!   [`approve_registration`](Accounts::approve_registration), which grants
//!   the new contact the chosen permissions; the operator at the command
//!   line ([`Actor::operator`]) has no session and is exempt;
//! - password change: [`change_password`](Accounts::change_password), see
//!   [`Accounts::check_password_change_step_up`].
//!
//! There is no email change operation; one would join this list.

use storage::repo::sessions;

use crate::admin::Actor;
use crate::error::AccountsError;
use crate::service::Accounts;

type Result<T> = std::result::Result<T, AccountsError>;

impl Accounts {
    /// [`check_step_up`](Self::check_step_up) for an actor: the session
    /// it acts through must have authenticated recently. The operator at
    /// the command line is exempt (it has no session; whoever runs the CLI
    /// holds the server's database and keys). Any other actor without a
    /// session is refused: a front-end that forgot the session fails
    /// closed.
    pub(crate) fn check_actor_step_up(&self, actor: &Actor) -> Result<()> {
        if actor.is_operator() {
            return Ok(());
        }
        match actor.session_id.as_deref() {
            Some(session_id) => self.check_step_up(&actor.user_id, session_id),
            None => Err(AccountsError::StepUpRequired),
        }
    }

    /// The step-up rule of a password change, which asks for the current
    /// password anyway:
    /// - a user **without** a second factor proves themselves with that
    ///   password, a fresh authentication by the only factor they have;
    ///   asking for it twice (step-up, then the form) would add nothing. So
    ///   only the session must be theirs and live; the operation checks the
    ///   password (counted like a failed login when wrong).
    /// - a user **with** a second factor needs a recent authentication with
    ///   it, like every sensitive operation: the password alone is exactly
    ///   what a second factor is there to not trust (a stolen cookie plus a
    ///   phished password must not take the account over).
    ///
    /// The password typed here does not renew the session's
    /// authentication: it proves this change, not the ones after it.
    pub(crate) fn check_password_change_step_up(
        &self,
        user_id: &str,
        session_id: &str,
    ) -> Result<()> {
        let mut conn = self.conn()?;
        if !self.second_factors_in(&mut conn, user_id)?.is_empty() {
            drop(conn);
            return self.check_step_up(user_id, session_id);
        }
        sessions::find(&mut conn, session_id)?
            .filter(|s| s.user_id == user_id && s.revoked_at.is_none())
            .map(|_| ())
            .ok_or(AccountsError::StepUpRequired)
    }
}

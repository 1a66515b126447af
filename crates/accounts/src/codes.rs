//! One-time email codes: 6 digits from the OS CSPRNG, stored only as an
//! HMAC-SHA256 tag under a server-side key (a 6-digit space is tiny, so a
//! plain hash of a leaked table would be reversed in milliseconds; without
//! the key it can't be). Valid 10 minutes, at most 5 wrong attempts, single
//! use, superseded by a newer code, and a 60 s cooldown between sends.

use chrono::{NaiveDateTime, TimeDelta};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use storage::AnyConnection;
use storage::models::EmailCodeRow;
use storage::repo::email_codes;

use crate::error::AccountsError;
use crate::secrets::{hex, unhex};

pub const CODE_TTL: TimeDelta = TimeDelta::minutes(10);
pub const MAX_ATTEMPTS: i64 = 5;
pub const RESEND_COOLDOWN: TimeDelta = TimeDelta::seconds(60);

/// What a code proves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// The address of a new, pending account.
    Signup,
    /// The address belongs to an organization (seed 004, before signup).
    Organization,
    PasswordReset,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Signup => "signup",
            Self::Organization => "organization",
            Self::PasswordReset => "password_reset",
        }
    }
}

/// The server-side key codes are tagged with.
pub struct CodeKey(hmac::Key);

impl CodeKey {
    pub fn new(secret: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    fn message(purpose: Purpose, email: &str, organization: Option<&str>, code: &str) -> String {
        // Binding purpose, address and organization into the tag means a code
        // can't be replayed for another purpose or address.
        format!(
            "{}\n{email}\n{}\n{code}",
            purpose.as_str(),
            organization.unwrap_or("")
        )
    }

    fn tag(&self, purpose: Purpose, email: &str, organization: Option<&str>, code: &str) -> String {
        let tag = hmac::sign(
            &self.0,
            Self::message(purpose, email, organization, code).as_bytes(),
        );
        hex(tag.as_ref())
    }

    /// The stored form of a user's recovery code (already normalised):
    /// keyed, so the table alone can't be searched for the codes.
    pub(crate) fn recovery_tag(&self, user_id: &str, code: &str) -> String {
        let tag = hmac::sign(&self.0, format!("recovery\n{user_id}\n{code}").as_bytes());
        hex(tag.as_ref())
    }

    /// Constant-time check of a candidate code against a stored tag.
    fn matches(&self, row: &EmailCodeRow, purpose: Purpose, candidate: &str) -> bool {
        let Some(stored) = unhex(&row.code_hash) else {
            return false;
        };
        let message = Self::message(
            purpose,
            &row.email,
            row.organization_id.as_deref(),
            candidate,
        );
        hmac::verify(&self.0, message.as_bytes(), &stored).is_ok()
    }
}

/// How many digits a code has.
pub const CODE_DIGITS: usize = 6;

/// Six uniformly random digits.
pub fn new_code() -> String {
    let rng = SystemRandom::new();
    loop {
        let mut bytes = [0u8; 4];
        rng.fill(&mut bytes)
            .expect("the operating system's random source failed");
        let n = u32::from_be_bytes(bytes);
        // Reject the top sliver so that `% 1_000_000` has no bias.
        if n < 4_294_000_000 {
            return format!("{:06}", n % 1_000_000);
        }
    }
}

/// A code that passed the checks; it has been consumed.
pub struct VerifiedCode {
    pub organization_id: Option<String>,
}

/// Outcome of checking a code. Refusals are outcomes, not errors, because the
/// attempt counter they raise must be committed.
pub enum CodeCheck {
    Verified(VerifiedCode),
    Refused(AccountsError),
}

/// Issues a new code: enforces the cooldown, kills older codes, stores the
/// tag. Returns the code for the mail. Call inside a write transaction.
pub fn issue(
    conn: &mut AnyConnection,
    key: &CodeKey,
    purpose: Purpose,
    email: &str,
    organization: Option<&str>,
    now: NaiveDateTime,
) -> Result<String, AccountsError> {
    // Two requests for one address at once: the second waits, then sees the
    // first's code and its cooldown.
    storage::repo::lock_key(conn, &format!("email code {} {email}", purpose.as_str()))?;
    if let Some(latest) = email_codes::latest(conn, purpose.as_str(), email)? {
        let next_allowed = latest.created_at + RESEND_COOLDOWN;
        if next_allowed > now {
            let wait = (next_allowed - now).num_seconds().max(1);
            return Err(AccountsError::TooManyRequests {
                retry_after_secs: wait,
            });
        }
    }
    email_codes::supersede(conn, purpose.as_str(), email, now)?;
    let code = new_code();
    email_codes::insert(
        conn,
        &EmailCodeRow {
            id: uuid::Uuid::new_v4().to_string(),
            purpose: purpose.as_str().to_owned(),
            email: email.to_owned(),
            organization_id: organization.map(str::to_owned),
            code_hash: key.tag(purpose, email, organization, &code),
            attempts: 0,
            created_at: now,
            expires_at: now + CODE_TTL,
            consumed_at: None,
        },
    )?;
    Ok(code)
}

/// Checks a candidate against the newest live code. Call inside a write
/// transaction and commit whatever the outcome.
pub fn check(
    conn: &mut AnyConnection,
    key: &CodeKey,
    purpose: Purpose,
    email: &str,
    candidate: &str,
    now: NaiveDateTime,
) -> Result<CodeCheck, AccountsError> {
    let invalid = || Ok(CodeCheck::Refused(AccountsError::InvalidCode));
    let Some(row) = email_codes::latest(conn, purpose.as_str(), email)? else {
        return invalid();
    };
    if row.consumed_at.is_some() || row.expires_at <= now {
        return invalid();
    }
    if row.attempts >= MAX_ATTEMPTS {
        return Ok(CodeCheck::Refused(AccountsError::TooManyAttempts));
    }
    let well_formed = candidate.len() == 6 && candidate.bytes().all(|b| b.is_ascii_digit());
    if !well_formed || !key.matches(&row, purpose, candidate) {
        email_codes::count_attempt(conn, &row.id)?;
        if row.attempts + 1 >= MAX_ATTEMPTS {
            // The fifth miss kills the code; say so now rather than on the sixth try.
            email_codes::consume(conn, &row.id, now)?;
            return Ok(CodeCheck::Refused(AccountsError::TooManyAttempts));
        }
        return invalid();
    }
    email_codes::consume(conn, &row.id, now)?;
    Ok(CodeCheck::Verified(VerifiedCode {
        organization_id: row.organization_id,
    }))
}

/// The same work as [`issue`]'s tag computation and [`check`]'s lookup, for
/// addresses that have no account: keeps "no such user" as slow as "mail sent".
pub fn equivalent_work(
    conn: &mut AnyConnection,
    key: &CodeKey,
    purpose: Purpose,
    email: &str,
) -> Result<(), AccountsError> {
    let _ = email_codes::latest(conn, purpose.as_str(), email)?;
    let _ = key.tag(purpose, email, None, &new_code());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits_and_vary() {
        let codes: std::collections::HashSet<String> = (0..50).map(|_| new_code()).collect();
        assert!(
            codes
                .iter()
                .all(|c| c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit()))
        );
        assert!(codes.len() > 45);
    }

    #[test]
    fn tags_bind_purpose_address_and_key() {
        let key = CodeKey::new(b"0123456789abcdef0123456789abcdef");
        let row = |purpose: Purpose, hash: String| EmailCodeRow {
            id: "x".into(),
            purpose: purpose.as_str().into(),
            email: "a@b.com".into(),
            organization_id: None,
            code_hash: hash,
            attempts: 0,
            created_at: NaiveDateTime::default(),
            expires_at: NaiveDateTime::default(),
            consumed_at: None,
        };
        let tag = key.tag(Purpose::Signup, "a@b.com", None, "123456");
        assert!(!tag.contains("123456"));
        assert!(key.matches(
            &row(Purpose::Signup, tag.clone()),
            Purpose::Signup,
            "123456"
        ));
        assert!(!key.matches(
            &row(Purpose::Signup, tag.clone()),
            Purpose::Signup,
            "123457"
        ));
        assert!(!key.matches(
            &row(Purpose::Signup, tag.clone()),
            Purpose::PasswordReset,
            "123456"
        ));
        let other_key = CodeKey::new(b"another key of thirty-two bytes!");
        assert!(!other_key.matches(&row(Purpose::Signup, tag), Purpose::Signup, "123456"));
    }
}

//! Domain values that are parsed once, at the edge, and trusted afterwards.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

/// Why a value was refused. `field` names the input for per-field errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ParseError {
    pub field: &'static str,
    pub reason: &'static str,
}

fn refuse(field: &'static str, reason: &'static str) -> ParseError {
    ParseError { field, reason }
}

/// An email address checked by an RFC 5322 parser, lowercased whole.
///
/// Domains are case-insensitive by standard; local parts strictly are not,
/// but no mail provider in use treats `Kim@` and `kim@` as different people,
/// while users do type either. One account per address, however it is typed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub const MAX_LEN: usize = 254;

    pub fn parse(input: &str) -> Result<Self, ParseError> {
        let input = input.trim();
        if input.is_empty() {
            return Err(refuse("email", "is required"));
        }
        if input.len() > Self::MAX_LEN {
            return Err(refuse("email", "is longer than 254 characters"));
        }
        let parsed = email_address::EmailAddress::parse_with_options(
            input,
            email_address::Options::default()
                .without_display_text()
                .without_domain_literal(),
        )
        .map_err(|_| refuse("email", "is not a valid email address"))?;
        let (local, domain) = (parsed.local_part(), parsed.domain());
        if !domain.contains('.') {
            return Err(refuse("email", "needs a fully qualified domain"));
        }
        Ok(Self(format!("{local}@{domain}").to_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(_, d)| d)
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// 3–32 characters of `[a-z0-9._-]`, compared case-insensitively (stored lowercased).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        let lowered = input.trim().to_ascii_lowercase();
        if !(3..=32).contains(&lowered.len()) {
            return Err(refuse("username", "must be 3 to 32 characters"));
        }
        if !lowered.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        }) {
            return Err(refuse(
                "username",
                "may contain only a-z, 0-9, '.', '_' and '-'",
            ));
        }
        Ok(Self(lowered))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A display name: 1–100 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        let trimmed = input.trim();
        let count = trimmed.chars().count();
        if count == 0 || count > 100 {
            return Err(refuse("name", "must be 1 to 100 characters"));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(refuse("name", "must not contain control characters"));
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A new password that meets the policy: 8–128 characters (NIST 800-63B:
/// length, no composition rules). Never printed.
pub struct Password(SecretString);

impl Password {
    pub const MIN_CHARS: usize = 8;
    pub const MAX_CHARS: usize = 128;

    pub fn parse(input: SecretString) -> Result<Self, ParseError> {
        let count = input.expose_secret().chars().count();
        if count < Self::MIN_CHARS {
            return Err(refuse("password", "must be at least 8 characters"));
        }
        if count > Self::MAX_CHARS {
            return Err(refuse("password", "must be at most 128 characters"));
        }
        Ok(Self(input))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// What a user typed into the login field: an email when it has an `@`,
/// otherwise a username. `None` when it is neither (the login then fails like
/// an unknown user, after the same amount of work).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginId {
    Email(EmailAddress),
    Username(Username),
}

impl LoginId {
    pub fn parse(input: &str) -> Option<Self> {
        if input.contains('@') {
            EmailAddress::parse(input).ok().map(Self::Email)
        } else {
            Username::parse(input).ok().map(Self::Username)
        }
    }
}

/// Account states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserStatus {
    Active,
    PendingVerification,
    Invited,
    Disabled,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::PendingVerification => "pending_verification",
            Self::Invited => "invited",
            Self::Disabled => "disabled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "active" => Self::Active,
            "pending_verification" => Self::PendingVerification,
            "invited" => Self::Invited,
            "disabled" => Self::Disabled,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_trimmed_and_lowercased() {
        let e = EmailAddress::parse("  Kim.Lee@SNU.AC.KR ").unwrap();
        assert_eq!(e.as_str(), "kim.lee@snu.ac.kr");
        assert_eq!(e.domain(), "snu.ac.kr");
    }

    #[test]
    fn email_garbage_is_refused() {
        for bad in [
            "",
            "plain",
            "a@",
            "@b.com",
            "a@b",
            "a b@c.com",
            "<a@b.com>",
            "x@[1.2.3.4]",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?} accepted");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(EmailAddress::parse(&long).is_err());
    }

    #[test]
    fn username_rules() {
        assert_eq!(
            Username::parse("Kim_01.x-y").unwrap().as_str(),
            "kim_01.x-y"
        );
        for bad in [
            "ab",
            &"a".repeat(33),
            "한글이름",
            "with space",
            "semi;colon",
        ] {
            assert!(Username::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn password_length_counts_characters() {
        assert!(Password::parse("short".into()).is_err());
        assert!(Password::parse("비밀번호비밀번호".into()).is_ok());
        assert!(Password::parse("x".repeat(129).into()).is_err());
        let p = Password::parse("correct horse".into()).unwrap();
        assert!(!format!("{p:?}").contains("horse"));
    }

    #[test]
    fn login_id_chooses_by_at_sign() {
        assert!(matches!(LoginId::parse("a@b.com"), Some(LoginId::Email(_))));
        assert!(matches!(
            LoginId::parse("alice"),
            Some(LoginId::Username(_))
        ));
        assert_eq!(LoginId::parse("a"), None);
    }
}

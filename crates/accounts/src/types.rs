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

/// An email address we can deliver to, lowercased whole.
///
/// The local part is an RFC 5321 dot-atom of ASCII characters (no quoted
/// strings, comments or UTF-8 local parts: an address like
/// `"x@evil.com"@acme.example` is refused here, not at delivery); the domain
/// is IDNA-normalised ([`Domain`]). The result must also pass the mailer's own
/// recipient check ([`mailer::check_recipient`]), so every address accepted
/// at the edge is one the mail transport takes.
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
        let invalid = || refuse("email", "is not a valid email address");
        let (local, domain) = input.rsplit_once('@').ok_or_else(invalid)?;
        if !is_dot_atom(local) {
            return Err(invalid());
        }
        let domain = Domain::parse(domain)
            .map_err(|_| refuse("email", "needs a valid, fully qualified domain"))?;
        let address = format!("{}@{}", local.to_ascii_lowercase(), domain.as_str());
        if address.len() > Self::MAX_LEN || mailer::check_recipient(&address).is_err() {
            return Err(invalid());
        }
        Ok(Self(address))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The address of an account that exists only for a registered client's
    /// user: under `.invalid` (RFC 2606), so it can never receive mail, and
    /// never accepted from outside ([`EmailAddress::parse`] refuses it), so
    /// nobody can sign up with it first.
    ///
    /// Client ids for users are case-sensitive (`Zed1` and `zed1` are two
    /// people) while addresses are kept lowercased: an id with capitals gets
    /// a digest of its exact spelling appended, so no two ids share one
    /// address.
    pub(crate) fn for_client_user(external_id: &str, client_id: &str) -> Self {
        let local = if external_id.bytes().any(|b| b.is_ascii_uppercase()) {
            // 64 bits of the exact spelling's SHA-256 (hex).
            let tag = &crate::secrets::token_hash(external_id)[..16];
            format!("u{external_id}.{tag}")
        } else {
            format!("u{external_id}")
        };
        Self(format!("{local}@{client_id}.clients.invalid").to_ascii_lowercase())
    }

    pub fn domain(&self) -> Domain {
        Domain(self.0.rsplit_once('@').map_or("", |(_, d)| d).to_owned())
    }
}

/// RFC 5321 `Dot-string`: atoms of `atext` joined by single dots, at most
/// 64 octets.
fn is_dot_atom(local: &str) -> bool {
    let atext = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b);
    (1..=64).contains(&local.len())
        && local
            .split('.')
            .all(|atom| !atom.is_empty() && atom.bytes().all(atext))
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A DNS domain in canonical form: IDNA (punycode) ASCII, lowercase, at
/// least two labels. `스누.kr` and `xn--...kr` compare equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Domain(String);

impl Domain {
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        let invalid = || refuse("domain", "is not a valid domain name");
        let input = input.trim().trim_end_matches('.');
        let ascii = idna::domain_to_ascii_strict(input).map_err(|_| invalid())?;
        let labels: Vec<&str> = ascii.split('.').collect();
        let label_ok = |l: &&str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        if ascii.len() > 253 || labels.len() < 2 || !labels.iter().all(label_ok) {
            return Err(invalid());
        }
        // A name mail can reach: no IPv4 address written as a name (an
        // all-numeric top-level label) and none of the names reserved to
        // never resolve (RFC 2606, RFC 6761).
        let top = labels
            .last()
            .map_or(String::new(), |l| l.to_ascii_lowercase());
        if top.bytes().all(|b| b.is_ascii_digit())
            || matches!(top.as_str(), "invalid" | "localhost")
        {
            return Err(invalid());
        }
        Ok(Self(ascii.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Exact match, or a subdomain when `include_subdomains`. Label-wise:
    /// `evil-snu.ac.kr` is not under `snu.ac.kr`.
    pub fn is_covered_by(&self, allowed: &str, include_subdomains: bool) -> bool {
        self.0 == allowed || (include_subdomains && self.0.ends_with(&format!(".{allowed}")))
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// 3–32 characters of `[a-z0-9._-]`, compared case-insensitively (stored lowercased).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    pub const MIN_LEN: usize = 3;
    pub const MAX_LEN: usize = 32;

    pub fn parse(input: &str) -> Result<Self, ParseError> {
        let lowered = input.trim().to_ascii_lowercase();
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&lowered.len()) {
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

/// A phone number, parsed by libphonenumber's rules and kept in E.164
/// (`+821012345678`). National numbers are read in `default_region`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    pub fn parse(input: &str, default_region: &str) -> Result<Self, ParseError> {
        let invalid = || refuse("contact_phone", "is not a valid phone number");
        let input = input.trim();
        if input.is_empty() {
            return Err(refuse("contact_phone", "is required"));
        }
        if input.len() > 40 {
            return Err(invalid());
        }
        let region = default_region.parse::<phonenumber::country::Id>().ok();
        let number = phonenumber::parse(region, input).map_err(|_| invalid())?;
        if !phonenumber::is_valid(&number) {
            return Err(invalid());
        }
        Ok(Self(
            number.format().mode(phonenumber::Mode::E164).to_string(),
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `code` (upper case, e.g. `KR`) is a region libphonenumber
    /// knows. Cheap: unlike [`parse`](Self::parse) it does not load the
    /// metadata, which takes ≈ 80 ms the first time.
    pub fn is_known_region(code: &str) -> bool {
        code.parse::<phonenumber::country::Id>().is_ok()
    }

    /// Loads libphonenumber's metadata now (≈ 80 ms, once per process), so
    /// that the first request with a phone number does not pay for it.
    pub fn warm_up() {
        let _ = Self::parse("+82 2 880 5114", "KR");
    }
}

/// A display name: 1–100 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub const MAX_CHARS: usize = 100;

    pub fn parse(input: &str) -> Result<Self, ParseError> {
        let trimmed = input.trim();
        let count = trimmed.chars().count();
        if count == 0 || count > Self::MAX_CHARS {
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

/// Why a password was refused by [`Password::check_strength`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeakPassword(pub String);

impl Password {
    /// The one strength rule for a new password of the account with this
    /// email address and username: every operation that sets a password
    /// (signup, activation, reset, change, operator bootstrap) calls it, with
    /// both identifiers. They count with the email's local part, and
    /// compare with the password trimmed and case-folded, so
    /// `" Kim.Lee@SNU.ac.kr "`, `kim.lee` and `kim.lee@snu` are all refused
    /// for `kim.lee@snu.ac.kr`.
    pub fn check_for_account(
        &self,
        email: &str,
        username: Option<&str>,
    ) -> Result<(), WeakPassword> {
        let mut inputs = vec![email];
        inputs.extend(email.rsplit_once('@').map(|(local, _)| local));
        inputs.extend(username);
        self.check_strength(&inputs)
    }

    /// NIST 800-63B: refuse passwords that are common, guessable, or built
    /// from the account's own identifiers. zxcvbn's dictionaries (common
    /// passwords, names, keyboard patterns, l33t substitutions) decide;
    /// score 0–1 ("too guessable"/"very guessable") is refused.
    fn check_strength(&self, user_inputs: &[&str]) -> Result<(), WeakPassword> {
        let candidate = self.expose();
        if built_from_identifiers(candidate, user_inputs) {
            return Err(WeakPassword(
                "must not be the same as your email address or username".into(),
            ));
        }
        let estimate = zxcvbn::zxcvbn(candidate, user_inputs);
        if u8::from(estimate.score()) < 2 {
            let hint = estimate
                .feedback()
                .and_then(|f| f.warning())
                .map(|w| w.to_string())
                .unwrap_or_else(|| "is too easy to guess".to_owned());
            return Err(WeakPassword(hint));
        }
        Ok(())
    }
}

/// `text` as compared with identifiers: NFKC (full-width and other
/// compatibility forms become plain letters), lowercased, letters and digits
/// only (spaces, dots, soft hyphens and other separators dropped).
fn folded(text: &str) -> String {
    icu_normalizer::ComposingNormalizerBorrowed::new_nfkc()
        .normalize(text)
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric())
        .collect()
}

/// The password is an identifier of the account (`user_inputs`: the email,
/// its local part, the username) with at most a few characters more, once
/// folded ([`folded`]): after removing every identifier and every
/// word of the email's domain from it, fewer than 6 characters are left.
/// `kim.lee@snu`, `Kim Lee 2026`, `ｋｉｍｌｅｅ`, `kimlee@acme-corp` are all
/// refused for `kim.lee@acme-corp.example`; a passphrase that merely
/// contains the name is not.
fn built_from_identifiers(password: &str, user_inputs: &[&str]) -> bool {
    const LEFT_OVER_MIN: usize = 6;
    let password = folded(password);
    let mut personal: Vec<String> = user_inputs
        .iter()
        .map(|input| folded(input))
        .filter(|input| input.chars().count() >= 3)
        .collect();
    if !personal
        .iter()
        .any(|input| password.contains(input.as_str()))
    {
        return false;
    }
    // Domain words count as filler once a personal identifier is there.
    for input in user_inputs {
        if let Some((_, domain)) = input.rsplit_once('@') {
            personal.push(folded(domain));
            personal.extend(
                domain
                    .split(['.', '-'])
                    .map(folded)
                    .filter(|word| word.chars().count() >= 3),
            );
        }
    }
    // Longest first, so a whole identifier goes before its parts.
    personal.sort_by_key(|input| std::cmp::Reverse(input.len()));
    let mut left = password;
    for input in &personal {
        left = left.replace(input.as_str(), "");
    }
    left.chars().count() < LEFT_OVER_MIN
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
        assert_eq!(e.domain().as_str(), "snu.ac.kr");
        let idn = EmailAddress::parse("kim@스누.kr").unwrap();
        assert_eq!(idn.domain(), Domain::parse("스누.KR").unwrap());
        assert!(idn.domain().as_str().starts_with("xn--"));
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
            "\"x@evil.com\"@acme.example",
            "\"quoted\"@acme.example",
            "a(comment)@acme.example",
            ".a@acme.example",
            "a.@acme.example",
            "a..b@acme.example",
            "김@acme.example",
            "Kim <kim@acme.example>",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?} accepted");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(EmailAddress::parse(&long).is_err());
    }

    #[test]
    fn domains_match_label_wise() {
        let snu = Domain::parse("SNU.ac.kr.").unwrap();
        assert_eq!(snu.as_str(), "snu.ac.kr");
        assert!(snu.is_covered_by("snu.ac.kr", false));
        let evil = Domain::parse("evil-snu.ac.kr").unwrap();
        assert!(!evil.is_covered_by("snu.ac.kr", false));
        assert!(!evil.is_covered_by("snu.ac.kr", true));
        let sub = Domain::parse("mail.snu.ac.kr").unwrap();
        assert!(!sub.is_covered_by("snu.ac.kr", false));
        assert!(sub.is_covered_by("snu.ac.kr", true));
        for bad in [
            "",
            "localhost",
            "a..b",
            "-a.com",
            "a b.com",
            "x.com/path",
            "1.2.3.4",
            "127.0.0.1",
            "example.123",
            "a.0",
            "foo.invalid",
            "x.clients.invalid",
            "my.localhost",
        ] {
            assert!(Domain::parse(bad).is_err(), "{bad:?} accepted");
        }
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
    fn common_and_personal_passwords_are_weak() {
        let check =
            |p: &str, inputs: &[&str]| Password::parse(p.into()).unwrap().check_strength(inputs);
        for weak in [
            "password",
            "password1",
            "12345678",
            "qwertyuiop",
            "iloveyou1",
            "P@ssw0rd!",
        ] {
            assert!(check(weak, &[]).is_err(), "{weak:?} accepted");
        }
        assert!(check("kim@example.com", &["kim@example.com", "kim"]).is_err());
        let for_account = |p: &str| {
            Password::parse(p.into())
                .unwrap()
                .check_for_account("hong.gildong417@acme.example", Some("gildong417"))
        };
        for weak in [
            " hong.gildong417@acme.example ",
            "HONG.GILDONG417@ACME.EXAMPLE",
            "hong.gildong417",
            "hong.gildong417@acme",
            "gildong417!!",
            // Found by the second black-box round: near-variants.
            "hong.gildong417@acme-example",
            "ｇｉｌｄｏｎｇ４１７ｘ",
            "g i l d o n g 4 1 7",
            "gil\u{ad}dong417x",
            "hong gildong417 acme",
        ] {
            assert!(for_account(weak).is_err(), "{weak:?} accepted");
        }
        assert!(for_account("gildong417 and a long walk home").is_ok());
        assert!(for_account("gildong417 walks up the long mountain road").is_ok());
        assert!(check("correct horse battery staple", &["kim@example.com"]).is_ok());
        assert!(check("맑은 하늘 아래 푸른 바다", &[]).is_ok());
    }

    #[test]
    fn phone_numbers_become_e164() {
        assert_eq!(
            PhoneNumber::parse("010-1234-5678", "KR").unwrap().as_str(),
            "+821012345678"
        );
        assert_eq!(
            PhoneNumber::parse("+82 2 880 5114", "KR").unwrap().as_str(),
            "+8228805114"
        );
        assert_eq!(
            PhoneNumber::parse("(650) 253-0000", "US").unwrap().as_str(),
            "+16502530000"
        );
        for bad in ["", "12", "not a phone", "010-1234", &"1".repeat(50)] {
            assert!(PhoneNumber::parse(bad, "KR").is_err(), "{bad:?} accepted");
        }
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

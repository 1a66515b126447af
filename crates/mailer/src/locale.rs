//! The languages mail is written in.

use std::fmt;

/// A supported mail language. Korean is the default: the service's users are
/// mostly Korean, and a mail must be sendable even when nothing says which
/// language the recipient reads.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Locale {
    #[default]
    Ko,
    En,
}

impl Locale {
    /// Every supported locale, default first.
    pub const ALL: [Locale; 2] = [Locale::Ko, Locale::En];

    /// A language tag such as `ko`, `ko-KR`, `en` or `en-US` (any case, `-`
    /// or `_`). Only the primary language subtag matters: an `en-GB` reader is
    /// served the English text too. None for any other language.
    pub fn parse(s: &str) -> Option<Locale> {
        let primary = s.trim().split(['-', '_']).next().unwrap_or_default();
        if primary.eq_ignore_ascii_case("ko") {
            Some(Locale::Ko)
        } else if primary.eq_ignore_ascii_case("en") {
            Some(Locale::En)
        } else {
            None
        }
    }

    /// The best supported locale for an `Accept-Language` header: entries are
    /// ranked by their `q` value (1 when absent; ties keep header order), and
    /// the first supported one with `q > 0` wins. Anything unparsable is
    /// skipped; with nothing supported the default ([`Locale::Ko`]) is used.
    pub fn from_accept_language(header: &str) -> Locale {
        let mut ranked: Vec<(f32, Locale)> = header
            .split(',')
            .filter_map(|entry| {
                let mut parts = entry.split(';');
                let locale = Locale::parse(parts.next()?)?;
                let mut q = 1.0_f32;
                for param in parts {
                    let (key, value) = param.split_once('=')?;
                    if key.trim().eq_ignore_ascii_case("q") {
                        q = value
                            .trim()
                            .parse()
                            .ok()
                            .filter(|q: &f32| (0.0..=1.0).contains(q))?;
                    }
                }
                // q=0 means "not acceptable" (RFC 9110 §12.4.2).
                (q > 0.0).then_some((q, locale))
            })
            .collect();
        // Stable sort: equal weights keep the order the client listed them in.
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
        ranked
            .first()
            .map(|&(_, locale)| locale)
            .unwrap_or_default()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Locale::Ko => "ko",
            Locale::En => "en",
        }
    }
}

impl fmt::Display for Locale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tags_case_insensitively() {
        assert_eq!(Locale::parse("ko"), Some(Locale::Ko));
        assert_eq!(Locale::parse("ko-KR"), Some(Locale::Ko));
        assert_eq!(Locale::parse("KO_kr"), Some(Locale::Ko));
        assert_eq!(Locale::parse("en"), Some(Locale::En));
        assert_eq!(Locale::parse("EN-us"), Some(Locale::En));
        assert_eq!(Locale::parse(" en-GB "), Some(Locale::En));
        assert_eq!(Locale::parse("fr"), None);
        assert_eq!(Locale::parse("kor"), None);
        assert_eq!(Locale::parse("english"), None);
        assert_eq!(Locale::parse(""), None);
    }

    #[test]
    fn accept_language_honours_q_values() {
        let cases = [
            ("en-US,en;q=0.9", Locale::En),
            ("ko-KR,ko;q=0.9,en;q=0.8", Locale::Ko),
            ("fr-FR, en;q=0.5", Locale::En),
            ("", Locale::Ko),
            ("en;q=0, ko;q=0.1", Locale::Ko),
            ("ko;q=0.2, en;q=0.7", Locale::En),
            ("de, ja;q=0.9", Locale::Ko),
            ("en;q=0", Locale::Ko),
            ("*", Locale::Ko),
            ("en;q=abc, ko;q=0.3", Locale::Ko),
            ("en;q=2", Locale::Ko),
            (";;;,,,q=1;en", Locale::Ko),
            ("\u{0}\u{ffff}garbage", Locale::Ko),
        ];
        for (header, expected) in cases {
            assert_eq!(Locale::from_accept_language(header), expected, "{header:?}");
        }
    }

    #[test]
    fn as_str_round_trips() {
        for locale in Locale::ALL {
            assert_eq!(Locale::parse(locale.as_str()), Some(locale));
            assert_eq!(locale.to_string(), locale.as_str());
        }
    }
}

//! A posted HTML form: `application/x-www-form-urlencoded` pairs, where a
//! name may repeat (checkboxes). serde_urlencoded can't read repeated names
//! into a list, so pages read fields by name.

use secrecy::SecretString;

/// Bigger bodies are refused before parsing (the largest form, a user's
/// permissions, is a few kilobytes).
pub const MAX_FORM_BYTES: usize = 64 * 1024;

pub struct Form {
    pairs: Vec<(String, String)>,
}

impl Form {
    pub fn parse(body: &[u8]) -> Self {
        Self {
            pairs: form_urlencoded::parse(body).into_owned().collect(),
        }
    }

    /// The first value of `name`, trimmed; empty when absent.
    pub fn text(&self, name: &str) -> String {
        self.raw(name).trim().to_owned()
    }

    /// The first value of `name` exactly as sent (passwords: spaces count).
    pub fn raw(&self, name: &str) -> &str {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    pub fn secret(&self, name: &str) -> SecretString {
        SecretString::from(self.raw(name).to_owned())
    }

    /// Every value of `name`, in order (checkbox groups).
    pub fn all(&self, name: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub fn checked(&self, name: &str) -> bool {
        !self.raw(name).is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_names_and_escapes() {
        let form = Form::parse(b"p=sms%3Asend&p=fame%3Aread&name=+a%20b+&pw=+x+");
        assert_eq!(form.all("p"), ["sms:send", "fame:read"]);
        assert_eq!(form.text("name"), "a b");
        assert_eq!(form.raw("pw"), " x ");
        assert_eq!(form.text("missing"), "");
        assert!(!form.checked("missing"));
    }
}

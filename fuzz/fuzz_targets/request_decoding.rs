//! Request bodies as the server decodes them: JSON into a value, then every
//! string through the domain parsers that guard the edge (emails, domains,
//! usernames, passwords with their strength check, phone numbers, display
//! names, login ids, registration forms). Nothing may panic.
#![no_main]

use accounts::{
    DisplayName, Domain, EmailAddress, LoginId, Password, PhoneNumber, RegistrationForm, Username,
};
use libfuzzer_sys::fuzz_target;

fn strings(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        serde_json::Value::Object(map) => map.iter().for_each(|(k, v)| {
            out.push(k.clone());
            strings(v, out)
        }),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let mut fields = Vec::new();
    match serde_json::from_slice::<serde_json::Value>(data) {
        Ok(value) => strings(&value, &mut fields),
        Err(_) => match std::str::from_utf8(data) {
            Ok(text) => fields.push(text.to_owned()),
            Err(_) => return,
        },
    }
    for field in &fields {
        let _ = EmailAddress::parse(field);
        let _ = Domain::parse(field);
        let _ = Username::parse(field);
        let _ = DisplayName::parse(field);
        let _ = LoginId::parse(field);
        let _ = PhoneNumber::parse(field, "KR");
        if field.len() <= 256 {
            let _ = Password::parse(field.clone().into());
        }
    }
    if let [company, contact, email, phone, ..] = fields.as_slice() {
        let _ = RegistrationForm::parse(company, contact, email, phone, "KR");
    }
});

//! What the request fields accept, stated once for both the check and the
//! OpenAPI document: each function here builds a field's schema from the
//! same constants the parsing code refuses by (`accounts`' domain types and
//! the limits below), and the request structs point at them with
//! `#[schema(schema_with = …)]`. Client generators trust the document, so it
//! must say everything the server enforces; `tests/openapi.rs` checks a few.
//!
//! Text rules that trim first (names, reasons) are patterns over the whole
//! value: surrounding whitespace (what Rust's `str::trim` removes) is
//! allowed, control characters (Unicode `Cc`) are not.

use accounts::{DisplayName, EmailAddress, Password, Role, Username};
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, KnownFormat, Object, ObjectBuilder, OneOfBuilder, Schema,
    SchemaFormat, Type,
};
use utoipa::openapi::{RefOr, schema::SchemaType};

/// The longest login name (an email address or a username) we look up.
pub const LOGIN_MAX_CHARS: usize = 320;
/// The longest password we check against a stored hash (login, current
/// password). New passwords follow [`Password`]'s policy instead.
pub const PASSWORD_MAX_CHARS: usize = 1024;
/// The longest code we count as an attempt; longer ones are refused unread.
pub const CODE_MAX_CHARS: usize = 32;
/// The longest user search.
pub const QUERY_MAX_CHARS: usize = 200;
/// Offsets we issue as cursors: a non-negative `i64`, at most 18 digits.
pub const CURSOR_MAX_DIGITS: usize = 18;
/// The largest integer every JSON client reads exactly (2^53 − 1).
pub const JSON_SAFE_INTEGER: i64 = (1 << 53) - 1;
/// Our refresh and activation tokens are short; longer ones are simply not ours.
pub const OPAQUE_TOKEN_MAX_BYTES: usize = 256;

/// What `str::trim` removes: Unicode `White_Space`.
const WHITESPACE: &str =
    r"\t\n\u000b\u000c\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";
/// Unicode `Cc`, what `char::is_control` refuses.
const CONTROL: &str = r"\u0000-\u001f\u007f-\u009f";

/// `schema` or JSON `null` (an optional field the server reads as absent).
fn or_null(mut schema: Object) -> Object {
    if let SchemaType::Type(kind) = schema.schema_type {
        schema.schema_type = SchemaType::Array(vec![kind, Type::Null]);
    }
    schema
}

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(SchemaType::Type(Type::String))
}

/// 1 to `max` characters once trimmed, none of them a control character;
/// around them anything `trim` removes. The length is in the pattern, not
/// in `maxLength`, because the server counts after trimming.
fn text_pattern(max: usize, optional: bool) -> String {
    let edge = format!("[^{WHITESPACE}{CONTROL}]");
    let inner = format!("{edge}([^{CONTROL}]{{0,{}}}{edge})?", max.saturating_sub(2));
    if optional {
        format!("^[{WHITESPACE}]*({inner}[{WHITESPACE}]*)?$")
    } else {
        format!("^[{WHITESPACE}]*{inner}[{WHITESPACE}]*$")
    }
}

/// Required text of 1 to `max` characters once trimmed, without control characters.
fn text(max: usize) -> ObjectBuilder {
    string().pattern(Some(text_pattern(max, false)))
}

/// An email address: [`EmailAddress::parse`]. The pattern states what the
/// `email` format doesn't: a domain mail can reach, so no top-level label
/// that is all digits or reserved never to resolve (`.invalid`,
/// `.localhost`; the addresses of client-only accounts live under
/// `.invalid` and are never accepted from outside).
pub fn email() -> Object {
    string()
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Email)))
        .max_length(Some(EmailAddress::MAX_LEN))
        .pattern(Some(
            r"^(?![\s\S]*\.(?:[Ii][Nn][Vv][Aa][Ll][Ii][Dd]|[Ll][Oo][Cc][Aa][Ll][Hh][Oo][Ss][Tt]|[0-9]+)\.*\s*$)",
        ))
        .build()
}

/// A new password: [`Password::parse`] (8–128 characters); how easy it is
/// to guess is checked too (422 `weak_password`), which no schema states.
pub fn new_password() -> Object {
    string()
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Password)))
        .min_length(Some(Password::MIN_CHARS))
        .max_length(Some(Password::MAX_CHARS))
        .build()
}

/// A password checked against the stored one.
pub fn password() -> Object {
    string()
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Password)))
        .max_length(Some(PASSWORD_MAX_CHARS))
        .build()
}

/// An email address or a username, as typed at login.
pub fn login() -> Object {
    string()
        .max_length(Some(LOGIN_MAX_CHARS))
        .description(Some("An email address or a username"))
        .build()
}

/// The mailed code: six digits.
pub fn email_code() -> Object {
    string()
        .pattern(Some(format!("^[0-9]{{{}}}$", accounts::codes::CODE_DIGITS)))
        .max_length(Some(CODE_MAX_CHARS))
        .build()
}

/// A second-factor code: six digits from an authenticator app, or a
/// recovery code (`xxxxx-xxxxx`; case, spaces and dashes don't matter).
pub fn second_factor_code() -> Object {
    string()
        .min_length(Some(1))
        .max_length(Some(CODE_MAX_CHARS))
        .build()
}

/// [`second_factor_code`], or absent/`null`.
pub fn optional_second_factor_code() -> Object {
    or_null(second_factor_code())
}

/// The mailed code, as a string or a JSON number (seed 004's clients send either).
pub fn email_code_or_number() -> RefOr<Schema> {
    let digits = u32::try_from(accounts::codes::CODE_DIGITS).unwrap_or(6);
    OneOfBuilder::new()
        .item(email_code())
        .item(
            ObjectBuilder::new()
                .schema_type(SchemaType::Type(Type::Integer))
                .minimum(Some(0))
                .maximum(Some(10_i64.pow(digits) - 1)),
        )
        .into()
}

fn username_pattern() -> String {
    format!(
        "[A-Za-z0-9._-]{{{},{}}}",
        Username::MIN_LEN,
        Username::MAX_LEN
    )
}

/// [`Username::parse`]: 3–32 of `a-z 0-9 . _ -` (compared case-insensitively).
pub fn username() -> Object {
    string()
        .pattern(Some(format!("^{}$", username_pattern())))
        .build()
}

/// A username, or empty or `null` for none.
pub fn optional_username() -> Object {
    or_null(
        string()
            .pattern(Some(format!("^({})?$", username_pattern())))
            .build(),
    )
}

/// [`DisplayName::parse`]: 1–100 characters, no control characters.
pub fn display_name() -> Object {
    text(DisplayName::MAX_CHARS).build()
}

/// A display name, or blank or `null` for none.
pub fn optional_display_name() -> Object {
    or_null(
        string()
            .pattern(Some(text_pattern(DisplayName::MAX_CHARS, true)))
            .build(),
    )
}

/// A company name: 1–200 characters, no control characters.
pub fn company_name() -> Object {
    text(accounts::registrations::COMPANY_NAME_MAX_CHARS).build()
}

/// An API token's name: 1–100 characters, no control characters.
pub fn token_name() -> Object {
    text(accounts::api_tokens::NAME_MAX_CHARS).build()
}

/// Why a registration is rejected: 1–2000 characters once trimmed.
pub fn rejection_reason() -> Object {
    let max = accounts::registrations::REJECTION_REASON_MAX_CHARS;
    let edge = format!("[^{WHITESPACE}]");
    string()
        .pattern(Some(format!(
            "^[{WHITESPACE}]*{edge}([\\s\\S]{{0,{}}}{edge})?[{WHITESPACE}]*$",
            max - 2
        )))
        .build()
}

/// A phone number, checked with libphonenumber's rules (numbers without a
/// `+country` code are read in the deployment's `phone_region`).
pub fn phone() -> Object {
    string()
        .min_length(Some(1))
        .max_length(Some(40))
        .description(Some(
            "A phone number libphonenumber accepts: `+82 10-1234-5678`, or `010-1234-5678` in the \
             deployment's `phone_region`",
        ))
        .build()
}

/// A UUID (organization ids). Anything else names nothing (404).
pub fn uuid() -> Object {
    string()
        .format(Some(SchemaFormat::Custom("uuid".to_owned())))
        .build()
}

/// A UUID; empty or `null` for none.
pub fn optional_uuid() -> RefOr<Schema> {
    OneOfBuilder::new()
        .item(uuid())
        .item(string().max_length(Some(0)))
        .item(ObjectBuilder::new().schema_type(SchemaType::Type(Type::Null)))
        .into()
}

/// A cursor we issued (`next_cursor`), or empty for the first page.
pub fn cursor() -> Object {
    string()
        .pattern(Some(format!("^[0-9]{{0,{CURSOR_MAX_DIGITS}}}$")))
        .build()
}

/// A registration state to filter by, or empty for all.
pub fn registration_status() -> Object {
    string()
        .enum_values(Some(["", "pending_review", "approved", "rejected"]))
        .build()
}

/// `ko` or `en`; anything else (or `null`) falls back to `Accept-Language`, then Korean.
pub fn locale() -> Object {
    or_null(
        string()
            .description(Some(
                "`ko` or `en`; anything else falls back to `Accept-Language`, then Korean",
            ))
            .build(),
    )
}

/// A user search: part of an email address, username or name.
pub fn search() -> Object {
    string().max_length(Some(QUERY_MAX_CHARS)).build()
}

/// What a registered client says about its user (buzzbook's `loginId`,
/// `role`): 1–100 characters, not blank, no control characters.
pub fn vouched_text() -> Object {
    string()
        .min_length(Some(1))
        .max_length(Some(100))
        .pattern(Some(format!(
            "^[^{CONTROL}]*[^{WHITESPACE}{CONTROL}][^{CONTROL}]*$"
        )))
        .build()
}

/// A client's id for its user (buzzbook's `userId`, the seed's `long`): an
/// integer, or 1–64 letters, digits, `-` or `_`.
pub fn external_user_id() -> RefOr<Schema> {
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(SchemaType::Type(Type::Integer))
                .minimum(Some(-JSON_SAFE_INTEGER))
                .maximum(Some(JSON_SAFE_INTEGER)),
        )
        .item(string().pattern(Some("^[A-Za-z0-9_-]{1,64}$")))
        .into()
}

/// Seed 004's login path: `{username, password}` logs in, `{refresh}` alone
/// rotates the refresh token; never both.
pub fn campus_login() -> RefOr<Schema> {
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .property("username", login())
                .property("password", password())
                .required("username")
                .required("password")
                .additional_properties(Some(AdditionalProperties::FreeForm(false))),
        )
        .item(
            ObjectBuilder::new()
                .property(
                    "refresh",
                    string().description(Some(
                        "A refresh token; any other value is `invalid_refresh_token`",
                    )),
                )
                .required("refresh")
                .additional_properties(Some(AdditionalProperties::FreeForm(false))),
        )
        .into()
}

/// The name of the component listing the configured permission catalog
/// (added by `openapi::build`, since the catalog is configuration).
pub const PERMISSION: &str = "Permission";
/// The name of the component bounding API token lifetimes by the configured maximum.
pub const API_TOKEN_DAYS: &str = "ApiTokenLifetimeDays";

/// Permissions from the catalog, each at most once.
pub fn permissions() -> RefOr<Schema> {
    ArrayBuilder::new()
        .items(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
            PERMISSION,
        )))
        .unique_items(true)
        .into()
}

/// Permissions to set, or `null` to leave them as they are.
pub fn optional_permissions() -> RefOr<Schema> {
    or_null_ref(permissions())
}

/// Roles, each at most once, or `null` to leave them as they are.
pub fn optional_roles() -> RefOr<Schema> {
    or_null_ref(
        ArrayBuilder::new()
            .items(string().enum_values(Some(Role::ALL.map(Role::as_str))))
            .unique_items(true)
            .into(),
    )
}

/// Days an API token lives: 1 to the configured maximum; `null` or absent
/// for the default.
pub fn api_token_days() -> RefOr<Schema> {
    or_null_ref(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
        API_TOKEN_DAYS,
    )))
}

/// `schema` or JSON `null`.
fn or_null_ref(schema: RefOr<Schema>) -> RefOr<Schema> {
    OneOfBuilder::new()
        .item(schema)
        .item(ObjectBuilder::new().schema_type(SchemaType::Type(Type::Null)))
        .into()
}

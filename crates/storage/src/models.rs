//! Rows as stored. Domain meaning (parsed emails, statuses, hashing) lives in
//! the `accounts` crate; these are plain carriers.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::schema::{refresh_tokens, revocations, sessions, users};

#[derive(Queryable, Selectable, Debug, Clone, PartialEq)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub username: Option<String>,
    pub name: Option<String>,
    pub password_hash: Option<String>,
    pub status: String,
    pub organization_id: Option<String>,
    pub permission_version: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Insertable, Debug)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub id: &'a str,
    pub email: &'a str,
    pub username: Option<&'a str>,
    pub name: Option<&'a str>,
    pub password_hash: Option<&'a str>,
    pub status: &'a str,
    pub organization_id: Option<&'a str>,
    pub permission_version: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Queryable, Selectable, Insertable, Debug, Clone, PartialEq)]
#[diesel(table_name = sessions)]
pub struct SessionRow {
    pub id: String,
    pub user_id: String,
    pub created_at: NaiveDateTime,
    pub last_used_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
    pub revoke_reason: Option<String>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

#[derive(Queryable, Selectable, Insertable, Debug, Clone, PartialEq)]
#[diesel(table_name = refresh_tokens)]
pub struct RefreshTokenRow {
    pub id: String,
    pub session_id: String,
    /// SHA-256 of the token, hex. The token itself is never stored.
    pub token_hash: String,
    pub parent_id: Option<String>,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub used_at: Option<NaiveDateTime>,
}

#[derive(Queryable, Selectable, Debug, Clone, PartialEq)]
#[diesel(table_name = revocations)]
pub struct RevocationRow {
    /// Monotonic cursor for pollers.
    pub id: i64,
    /// `sid` (a session) or `jti` (one token).
    pub kind: String,
    pub subject: String,
    /// After this instant no token the revocation covers is valid anyway, so
    /// the entry can be forgotten.
    pub expires_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
}

#[derive(Insertable, Debug)]
#[diesel(table_name = revocations)]
pub struct NewRevocation<'a> {
    pub kind: &'a str,
    pub subject: &'a str,
    pub expires_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
}

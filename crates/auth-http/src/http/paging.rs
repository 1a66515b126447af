//! What every list and admin answer shares: RFC 3339 times, opaque offset
//! cursors and the page size.

use actix_web::http::StatusCode;
use chrono::{NaiveDateTime, SecondsFormat};

use super::error::ApiError;

pub(crate) fn time(t: NaiveDateTime) -> String {
    t.and_utc().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Offset cursors: opaque to clients, a plain number to us.
pub(crate) fn offset(cursor: Option<&str>) -> Result<i64, ApiError> {
    match cursor {
        None | Some("") => Ok(0),
        Some(c) => c.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_cursor",
                "the cursor is not one we issued",
            )
        }),
    }
}

pub(crate) fn next_cursor(offset: i64, returned: usize, limit: i64) -> Option<String> {
    (returned as i64 == limit).then(|| (offset + limit).to_string())
}

/// Items per page of every admin list (API and pages).
pub(crate) const PAGE: i64 = 50;

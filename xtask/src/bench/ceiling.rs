//! The database's own ceiling for the refresh path: the statements a batch
//! of rotations runs in the server (lock-and-read, claim, touch, insert,
//! roles and permissions, in one transaction; `storage::repo`'s functions,
//! the very code the server calls), run back to back by this process
//! against the bench's database, with no HTTP, no JSON and no signing in
//! between. Directly on SQLite; through a pool connection on PostgreSQL,
//! as the server does. The server's refresh rate is reported as a ratio of
//! this.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::{SubsecRound, TimeDelta, Utc};
use diesel::Connection;
use serde::Serialize;
use storage::models::{RefreshTokenRow, SessionRow};
use storage::repo::{refresh_tokens, sessions, users};
use storage::{DatabaseUrl, PoolOptions, StorageError};

use super::server::EMAIL;

/// Rotations per second with `batch` rotations per transaction, and the
/// time of one transaction (what each of its callers would wait).
#[derive(Clone, Debug, Serialize)]
pub struct Ceiling {
    pub batch: usize,
    pub per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Runs rotations of `batch` fresh sessions of the bench user, `batch` per
/// transaction, for `seconds`.
pub fn refresh(url: &str, batch: usize, seconds: u64) -> Result<Ceiling> {
    let url = DatabaseUrl::parse(url).map_err(|e| anyhow::anyhow!("{e}"))?;
    let pool = storage::connect(
        &url,
        &PoolOptions {
            max_size: 1,
            ..PoolOptions::default()
        },
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut conn = pool.get().context("ceiling: no connection")?;
    let user = users::find_by_email(&mut conn, EMAIL)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .context("ceiling: no bench user")?;
    let at = Utc::now().trunc_subsecs(6).naive_utc();
    let mut hashes = Vec::with_capacity(batch);
    for _ in 0..batch {
        let session = SessionRow {
            id: uuid::Uuid::new_v4().to_string(),
            user_id: user.id.clone(),
            created_at: at,
            last_used_at: at,
            expires_at: at + TimeDelta::days(30),
            revoked_at: None,
            revoke_reason: None,
            user_agent: None,
            ip: None,
            client_id: None,
        };
        sessions::insert(&mut conn, &session).map_err(|e| anyhow::anyhow!("{e}"))?;
        let token = new_token(&session.id, None, at);
        hashes.push(token.token_hash.clone());
        refresh_tokens::insert(&mut conn, &token).map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    hashes.sort_unstable();
    let mut times = Vec::new();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    while Instant::now() < deadline {
        let one = Instant::now();
        let at = Utc::now().trunc_subsecs(6).naive_utc();
        let next = conn
            .transaction(|c| -> std::result::Result<Vec<String>, StorageError> {
                storage::repo::write_lock(c)?;
                let rows = refresh_tokens::lock_many_with_session_and_user(c, &hashes)?;
                refresh_tokens::claim_many(c, &hashes, at)?;
                let mut touched: Vec<String> = rows.iter().map(|r| r.1.id.clone()).collect();
                touched.sort_unstable();
                sessions::touch_many(c, &touched, at)?;
                let inserts: Vec<RefreshTokenRow> = rows
                    .iter()
                    .map(|(token, session, _)| new_token(&session.id, Some(&token.id), at))
                    .collect();
                refresh_tokens::insert_many(c, &inserts)?;
                users::roles_and_permissions_many(c, std::slice::from_ref(&user.id))?;
                let mut next: Vec<String> = inserts.into_iter().map(|t| t.token_hash).collect();
                next.sort_unstable();
                Ok(next)
            })
            .map_err(|e| anyhow::anyhow!("ceiling: {e}"))?;
        hashes = next;
        times.push(one.elapsed().as_secs_f64() * 1000.0);
    }
    let elapsed = started.elapsed().as_secs_f64();
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    Ok(Ceiling {
        batch,
        per_sec: (times.len() * batch) as f64 / elapsed,
        p50_ms: at(0.5),
        p99_ms: at(0.99),
    })
}

fn new_token(session_id: &str, parent: Option<&str>, at: chrono::NaiveDateTime) -> RefreshTokenRow {
    RefreshTokenRow {
        id: uuid::Uuid::new_v4().to_string(),
        session_id: session_id.to_owned(),
        token_hash: uuid::Uuid::new_v4().simple().to_string(),
        parent_id: parent.map(str::to_owned),
        created_at: at,
        expires_at: at + TimeDelta::hours(4),
        used_at: None,
    }
}

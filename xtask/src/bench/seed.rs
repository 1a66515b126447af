//! Bulk test data, written straight into the database (never through the
//! API, which would cost one Argon2 hash per user): `users` seeded users
//! sharing ONE precomputed Argon2id hash, and `revoked` revoked sessions,
//! each with a spent refresh token and a still-relevant `revocations` row (so
//! the server loads all of them into its revocation set at start).
//!
//! Rows are generated inside the database in one statement per table (a
//! recursive CTE on SQLite, `generate_series` on PostgreSQL), in one
//! transaction, then `ANALYZE`d.

use std::time::Instant;

use anyhow::{Context, Result, anyhow};
use diesel::connection::SimpleConnection;
use storage::{AnyConnection, DatabaseUrl, PoolOptions};

/// The password of every seeded user (`seed{i}@example.com`).
pub const SEEDED_PASSWORD: &str = "seeded password";

/// One real PHC string (m=19456, t=2, p=1) for every seeded user: their
/// password is [`SEEDED_PASSWORD`].
pub fn shared_hash() -> Result<String> {
    use argon2::password_hash::{Output, PasswordHash, SaltString};
    use argon2::{Algorithm, Argon2, Params, Version};
    let params = Params::new(19_456, 2, 1, Some(32)).map_err(|e| anyhow!("argon2: {e}"))?;
    let salt = SaltString::encode_b64(b"bench-seed-salt!").map_err(|e| anyhow!("salt: {e}"))?;
    // As the server hashes (`accounts::password`): the salt's encoded text
    // is what goes into Argon2, so the seeded users can really log in.
    let mut out = [0_u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into(
            SEEDED_PASSWORD.as_bytes(),
            salt.as_str().as_bytes(),
            &mut out,
        )
        .map_err(|e| anyhow!("argon2: {e}"))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: (&params).try_into().map_err(|e| anyhow!("argon2: {e}"))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| anyhow!("argon2: {e}"))?),
    };
    Ok(phc.to_string())
}

pub struct Seeded {
    pub users: u64,
    pub revoked_sessions: u64,
    pub seconds: f64,
}

/// `access_ttl_secs + leeway` of the server: how long revocations stay relevant.
pub fn seed(url: &str, users: u64, revoked: u64, revocation_ttl_secs: i64) -> Result<Seeded> {
    let started = Instant::now();
    let url = DatabaseUrl::parse(url).map_err(|e| anyhow!("database url: {e}"))?;
    let pool = storage::connect(
        &url,
        &PoolOptions {
            max_size: 1,
            ..PoolOptions::default()
        },
    )
    .map_err(|e| anyhow!("connecting: {e}"))?;
    let mut conn = pool.get().context("connecting")?;
    let hash = shared_hash()?;
    let now = chrono::Utc::now().naive_utc();
    let ts = |t: chrono::NaiveDateTime| t.format("'%Y-%m-%d %H:%M:%S%.6f'").to_string();
    let (now_s, later_s, revocation_end) = (
        ts(now),
        ts(now + chrono::TimeDelta::days(30)),
        ts(now + chrono::TimeDelta::seconds(revocation_ttl_secs)),
    );
    let revoked = revoked.min(users);
    let sql = match &mut *conn {
        AnyConnection::Sqlite(_) => {
            let n = |count: u64| {
                format!(
                    "WITH RECURSIVE n(i) AS (SELECT 1 WHERE {count} > 0 UNION ALL SELECT i + 1 FROM n WHERE i < {count})"
                )
            };
            format!(
                "BEGIN;
                {users_n}
                INSERT INTO users (id, email, username, name, password_hash, status,
                    organization_id, permission_version, created_at, updated_at, locale,
                    must_change_password, password_changed_at)
                SELECT printf('5eed0000-0000-4000-8000-%012d', i), 'seed' || i || '@example.com',
                    'seed' || i, 'Seeded User', '{hash}', 'active', NULL, 0, {now_s}, {now_s},
                    NULL, 0, {now_s}
                FROM n;
                {revoked_n}
                INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at,
                    revoked_at, revoke_reason, user_agent, ip)
                SELECT printf('5e550000-0000-4000-8000-%012d', i),
                    printf('5eed0000-0000-4000-8000-%012d', i), {now_s}, {now_s}, {later_s},
                    {now_s}, 'seeded', 'bench-seed', '127.0.0.1'
                FROM n;
                {revoked_n}
                INSERT INTO refresh_tokens (id, session_id, token_hash, parent_id, created_at,
                    expires_at, used_at)
                SELECT printf('5e7f0000-0000-4000-8000-%012d', i),
                    printf('5e550000-0000-4000-8000-%012d', i), printf('seed-token-hash-%048d', i),
                    NULL, {now_s}, {later_s}, {now_s}
                FROM n;
                {revoked_n}
                INSERT INTO revocations (kind, subject, expires_at, created_at)
                SELECT 'sid', printf('5e550000-0000-4000-8000-%012d', i), {revocation_end}, {now_s}
                FROM n;
                COMMIT;
                ANALYZE;",
                users_n = n(users),
                revoked_n = n(revoked),
            )
        }
        AnyConnection::Postgresql(_) => {
            let id = |prefix: &str| format!("'{prefix}-0000-4000-8000-' || lpad(i::text, 12, '0')");
            format!(
                "BEGIN;
                INSERT INTO users (id, email, username, name, password_hash, status,
                    organization_id, permission_version, created_at, updated_at, locale,
                    must_change_password, password_changed_at)
                SELECT {user_id}, 'seed' || i || '@example.com', 'seed' || i, 'Seeded User',
                    '{hash}', 'active', NULL, 0, {now_s}, {now_s}, NULL, false, {now_s}
                FROM generate_series(1, {users}) AS i;
                INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at,
                    revoked_at, revoke_reason, user_agent, ip)
                SELECT {session_id}, {user_id}, {now_s}, {now_s}, {later_s}, {now_s}, 'seeded',
                    'bench-seed', '127.0.0.1'
                FROM generate_series(1, {revoked}) AS i;
                INSERT INTO refresh_tokens (id, session_id, token_hash, parent_id, created_at,
                    expires_at, used_at)
                SELECT {token_id}, {session_id}, 'seed-token-hash-' || lpad(i::text, 48, '0'),
                    NULL, {now_s}, {later_s}, {now_s}
                FROM generate_series(1, {revoked}) AS i;
                INSERT INTO revocations (kind, subject, expires_at, created_at)
                SELECT 'sid', {session_id}, {revocation_end}, {now_s}
                FROM generate_series(1, {revoked}) AS i;
                COMMIT;
                ANALYZE;",
                user_id = id("5eed0000"),
                session_id = id("5e550000"),
                token_id = id("5e7f0000"),
            )
        }
    };
    conn.batch_execute(&sql).context("seeding")?;
    Ok(Seeded {
        users,
        revoked_sessions: revoked,
        seconds: started.elapsed().as_secs_f64(),
    })
}

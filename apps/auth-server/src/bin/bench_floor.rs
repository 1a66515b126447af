//! `bench_floor`: the ceiling `cargo xtask bench` measures the server
//! against. A bare actix-web handler answering `GET /healthz` exactly as the
//! server does (same body and content type, same worker count, same logging
//! set-up), optionally behind the server's own middleware, to price it:
//!
//! ```text
//! bench_floor [--layers edge] [--workers N] [--me-body FILE]
//! bench_floor --refresh-ceiling DATABASE_URL --batch N --seconds S --email E
//! ```
//!
//! With `--me-body`, it also answers `GET /api/v1/auth/me` with that
//! file's bytes as `application/json`, whatever the request carries: the
//! ceiling for `/me`, the same request and body on the wire with none of
//! the work (the server's own `/me` answer is what the bench puts there).
//!
//! `edge` is the server's one middleware, `auth_http::Edge` (without the
//! metrics, which need the front-end's state). Prints `listening on
//! http://ADDR` once bound, then serves until killed.
//!
//! `--refresh-ceiling` instead measures the database's own ceiling for the
//! refresh path: the statements a batch of rotations runs in the server
//! (lock-and-read, claim, touch, insert, roles and permissions, in one
//! transaction; `storage::repo`'s functions, the very code the server
//! calls), `N` rotations of sessions of user `E` per transaction, back to
//! back for `S` seconds, with no HTTP, JSON or signing in between; through
//! a pool connection, as the server does. It prints one line,
//! `ceiling BATCH PER_SEC P50_MS P99_MS`. It lives here, not in xtask,
//! because it must run optimized code (xtask is a debug build).
//!
//! Not part of the service: nothing else uses it.

use std::io::Write;
use std::net::TcpListener;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{App, HttpResponse, HttpServer, web};

async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ))
        .body(r#"{"status":"ok"}"#)
}

/// `GET /api/v1/auth/me` answering `body`, when there is one.
fn me_route(config: &mut web::ServiceConfig, body: Option<web::Bytes>) {
    if let Some(body) = body {
        config.route(
            "/api/v1/auth/me",
            web::get().to(move || {
                let body = body.clone();
                async move {
                    HttpResponse::Ok()
                        .insert_header((
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("application/json"),
                        ))
                        .body(body)
                }
            }),
        );
    }
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "--refresh-ceiling") {
        let value = |name: &str| {
            args.iter()
                .position(|a| a == name)
                .and_then(|i| args.get(i + 1))
                .cloned()
                .unwrap_or_default()
        };
        let number = |name: &str| value(name).parse::<u64>().unwrap_or(1).max(1);
        return match ceiling::refresh(
            &value("--refresh-ceiling"),
            &value("--email"),
            number("--batch") as usize,
            number("--seconds"),
        ) {
            Ok((per_sec, p50, p99)) => {
                println!("ceiling {} {per_sec} {p50} {p99}", number("--batch"));
                Ok(())
            }
            Err(e) => {
                eprintln!("refresh ceiling: {e}");
                std::process::exit(1);
            }
        };
    }
    let mut edge = false;
    let mut me_body: Option<web::Bytes> = None;
    let mut workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--layers", Some(value)) if value == "edge" => edge = true,
            ("--me-body", Some(path)) => me_body = Some(std::fs::read(path)?.into()),
            ("--workers", Some(value)) => {
                workers = value.parse().map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::InvalidInput, "--workers N")
                })?;
            }
            _ => {
                eprintln!(
                    "usage: bench_floor [--layers edge] [--workers N] \
                     [--me-body FILE]"
                );
                std::process::exit(2);
            }
        }
    }
    auth_server::logging::init_logging(&auth_server::config::LogFormat::Text);
    let listener = TcpListener::bind("127.0.0.1:0")?;
    println!("listening on http://{}", listener.local_addr()?);
    std::io::stdout().flush()?;
    actix_web::rt::System::new().block_on(async move {
        let server = if edge {
            HttpServer::new(move || {
                App::new()
                    .wrap(auth_http::Edge::new())
                    .route("/healthz", web::get().to(healthz))
                    .configure(|config| me_route(config, me_body.clone()))
            })
            .workers(workers)
            .listen(listener)?
            .run()
        } else {
            HttpServer::new(move || {
                App::new()
                    .route("/healthz", web::get().to(healthz))
                    .configure(|config| me_route(config, me_body.clone()))
            })
            .workers(workers)
            .listen(listener)?
            .run()
        };
        server.await
    })
}

/// The refresh ceiling (see the binary's doc).
mod ceiling {
    use std::time::{Duration, Instant};

    use anyhow::Result;
    use chrono::{SubsecRound, TimeDelta, Utc};
    use storage::models::{RefreshTokenRow, SessionRow};
    use storage::repo::{refresh_tokens, sessions, users};
    use storage::{DatabaseUrl, PoolOptions, StorageError};

    /// Unique enough for throw-away rows: random, from the OS.
    fn fresh_id() -> String {
        let mut bytes = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
            .map(|()| storage::hex(&bytes))
            .unwrap_or_default()
    }

    /// Runs rotations of `batch` fresh sessions of the bench user, `batch` per
    /// transaction, for `seconds`.
    pub fn refresh(url: &str, email: &str, batch: usize, seconds: u64) -> Result<(f64, f64, f64)> {
        let url = DatabaseUrl::parse(url).map_err(|e| anyhow::anyhow!("{e}"))?;
        let pool = storage::connect(
            &url,
            &PoolOptions {
                max_size: 1,
                ..PoolOptions::default()
            },
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut conn = pool.get()?;
        let user = users::find_by_email(&mut conn, email)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .ok_or_else(|| anyhow::anyhow!("no user {email}"))?;
        let at = Utc::now().trunc_subsecs(6).naive_utc();
        let mut hashes = Vec::with_capacity(batch);
        for _ in 0..batch {
            let session = SessionRow {
                id: fresh_id(),
                user_id: user.id.clone(),
                created_at: at,
                last_used_at: at,
                expires_at: at + TimeDelta::days(30),
                revoked_at: None,
                revoke_reason: None,
                user_agent: None,
                ip: None,
                client_id: None,
                amr: None,
                auth_time: None,
                scope: None,
                sso_session_id: None,
                forked_at: None,
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
            let next = refresh_tokens::rotation_transaction(
                &mut conn,
                |c| -> std::result::Result<Vec<String>, StorageError> {
                    storage::repo::write_lock(c)?;
                    let rows = refresh_tokens::lock_many_with_session_and_user(c, &hashes)?;
                    let mut touched: Vec<String> = rows.iter().map(|r| r.1.id.clone()).collect();
                    touched.sort_unstable();
                    let inserts: Vec<RefreshTokenRow> = rows
                        .iter()
                        .map(|(token, session, _)| new_token(&session.id, Some(&token.id), at))
                        .collect();
                    refresh_tokens::write_rotations(
                        c,
                        &hashes,
                        &touched,
                        &inserts,
                        std::slice::from_ref(&user.id),
                        at,
                    )?;
                    let mut next: Vec<String> = inserts.into_iter().map(|t| t.token_hash).collect();
                    next.sort_unstable();
                    Ok(next)
                },
            )
            .map_err(|e| anyhow::anyhow!("ceiling: {e}"))?;
            hashes = next;
            times.push(one.elapsed().as_secs_f64() * 1000.0);
        }
        let elapsed = started.elapsed().as_secs_f64();
        times.sort_by(f64::total_cmp);
        let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
        Ok(((times.len() * batch) as f64 / elapsed, at(0.5), at(0.99)))
    }

    fn new_token(
        session_id: &str,
        parent: Option<&str>,
        at: chrono::NaiveDateTime,
    ) -> RefreshTokenRow {
        RefreshTokenRow {
            id: RefreshTokenRow::new_id(),
            session_id: session_id.to_owned(),
            token_hash: fresh_id(),
            parent_id: parent.map(str::to_owned),
            created_at: at,
            expires_at: at + TimeDelta::hours(4),
            used_at: None,
        }
    }
}

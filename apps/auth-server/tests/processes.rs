//! The real binary: CLI commands, configuration errors, key rotation across
//! restarts, and two server processes sharing one database.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use storage::Backend;
use storage::test_support::TestDatabase;
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_auth-server");

fn command(db: &TestDatabase) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AUTH_DATABASE_URL", db.url_string())
        .env("AUTH_KEYS_DIR", db.dir.join("keys"))
        .env("AUTH_BIND", "127.0.0.1:0")
        .env("AUTH_ISSUER", "http://auth.test")
        .env("AUTH_WORKERS", "1")
        .env("AUTH_DB_POOL_SIZE", "3")
        .env("AUTH_MFA_REQUIRED_ROLES", "")
        .env("RUST_LOG", "warn")
        .current_dir(&db.dir);
    cmd
}

fn run_with_stdin(mut cmd: Command, stdin: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn user_add(db: &TestDatabase, email: &str, password: &str) -> Output {
    let mut cmd = command(db);
    cmd.args(["user", "add", "--email", email, "--name", "CLI User"]);
    run_with_stdin(cmd, &format!("{password}\n"))
}

/// A running `auth-server serve`, killed on drop.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(mut cmd: Command) -> Server {
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        // Owned by the guard first, so a failed start still kills the child.
        let mut server = Server {
            child,
            base: String::new(),
        };
        let mut lines = BufReader::new(server.child.stdout.take().unwrap()).lines();
        let deadline = Instant::now() + Duration::from_secs(30);
        while server.base.is_empty() {
            assert!(Instant::now() < deadline, "server did not start");
            let line = lines
                .next()
                .expect("server exited before listening")
                .unwrap();
            if let Some(base) = line.strip_prefix("listening on ") {
                server.base = base.to_owned();
            }
        }
        server
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn login(http: &reqwest::Client, server: &Server, login: &str) -> Value {
    login_at(http, &server.base, login).await
}

async fn me(http: &reqwest::Client, server: &Server, token: &str) -> (StatusCode, Value) {
    me_at(http, &server.base, token).await
}

fn create_db(backend: Backend) -> TestDatabase {
    TestDatabase::create(backend)
}

backend_tests!(
    two_instances_share_revocations,
    keys_rotate_across_restart,
    cli_user_add_and_migrate,
    outbox_survives_smtp_outage_and_a_killed_server,
    dead_mail_is_retried_from_the_cli,
    a_killed_server_loses_no_answered_signup_and_half_writes_nothing,
    sigterm_turns_readiness_first_then_stops_gracefully,
);

/// Keys move from the folder into PostgreSQL and back out: the first start
/// with a key-encryption key adopts the folder (tokens issued before stay
/// valid), `keys rotate` then works on the database, `keys export` writes a
/// sealed bundle that `keys import` reads into an empty folder; the key file
/// variant of the key-encryption key must be private.
#[tokio::test]
async fn keys_move_into_the_database_and_back() {
    const KEK: &str = "SsuqVwvGGlVGyN1NuSTlljTXzyb+iM9igdn3NTYy8Jc=";
    let db = create_db(Backend::Postgres);
    assert!(user_add(&db, "move@example.com", PASSWORD).status.success());
    let http = reqwest::Client::new();
    let server = Server::start(command(&db));
    let before = login(&http, &server, "move@example.com").await;
    let before = before["access_token"].as_str().unwrap().to_owned();
    drop(server);

    let with_kek = || {
        let mut cmd = command(&db);
        cmd.env("AUTH_KEY_ENCRYPTION_KEY", KEK);
        cmd
    };
    // The key-encryption key from a file: refused while others can read it.
    let kek_file = db.dir.join("kek");
    std::fs::write(&kek_file, KEK).unwrap();
    std::fs::set_permissions(&kek_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut cmd = command(&db);
    cmd.env("AUTH_KEY_ENCRYPTION_KEY_FILE", &kek_file)
        .args(["keys", "list"]);
    let refused = cmd.output().unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("chmod 600"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    std::fs::set_permissions(&kek_file, std::fs::Permissions::from_mode(0o600)).unwrap();

    // `keys rotate` before any server start adopts the folder first.
    let mut cmd = command(&db);
    cmd.env("AUTH_KEY_ENCRYPTION_KEY_FILE", &kek_file)
        .args(["keys", "rotate"]);
    let rotated = cmd.output().unwrap();
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    let listing = with_kek().args(["keys", "list"]).output().unwrap();
    let listing = String::from_utf8(listing.stdout).unwrap();
    assert_eq!(listing.matches("active (signs)").count(), 1, "{listing}");
    assert_eq!(
        listing.matches("retired, verifies until").count(),
        1,
        "{listing}"
    );

    // The key-encryption key forgotten: nothing falls back to a folder of
    // its own (its tokens would be refused by every other instance).
    for args in [&["keys", "list"][..], &["serve"][..]] {
        let forgot = command(&db).args(args).output().unwrap();
        assert!(!forgot.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&forgot.stderr);
        assert!(
            stderr.contains("AUTH_KEY_ENCRYPTION_KEY"),
            "{args:?}: {stderr}"
        );
    }

    let server = Server::start(with_kek());
    assert_eq!(
        me(&http, &server, &before).await.0,
        StatusCode::OK,
        "a token from the folder's key is still accepted"
    );
    let after = login(&http, &server, "move@example.com").await;
    assert_ne!(
        token_kid(&before),
        token_kid(after["access_token"].as_str().unwrap())
    );
    drop(server);

    // Export (sealed, never over a file) and import into an empty folder.
    let bundle = db.dir.join("keys.bundle");
    let export = with_kek()
        .args(["keys", "export", "--out"])
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    let text = std::fs::read_to_string(&bundle).unwrap();
    assert!(text.starts_with("sealed:v1:") && !text.contains("private_key"));
    assert_eq!(
        std::fs::metadata(&bundle).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let again = with_kek()
        .args(["keys", "export", "--out"])
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        !again.status.success(),
        "an existing file is never overwritten"
    );
    let import = |dir: &Path| {
        let mut cmd = with_kek();
        cmd.env("AUTH_KEY_STORE", "files")
            .env("AUTH_KEYS_DIR", dir)
            .args(["keys", "import", "--from"])
            .arg(&bundle);
        cmd.output().unwrap()
    };
    let folder = db.dir.join("moved-keys");
    let imported = import(&folder);
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    assert!(String::from_utf8_lossy(&imported.stdout).contains("imported 2 keys"));
    assert!(String::from_utf8_lossy(&import(&folder).stdout).contains("already holds"));
    let mut cmd = with_kek();
    cmd.env("AUTH_KEY_STORE", "files")
        .env("AUTH_KEYS_DIR", &folder);
    let server = Server::start(cmd);
    assert_eq!(me(&http, &server, &before).await.0, StatusCode::OK);
    let after = after["access_token"].as_str().unwrap();
    assert_eq!(me(&http, &server, after).await.0, StatusCode::OK);
    drop(server);

    // A leaked retired key revoked: a running server hears of it from the
    // database and refuses its tokens; the signing key can't be revoked.
    let server = Server::start(with_kek());
    let refused = with_kek()
        .args(["keys", "revoke", &token_kid(after)])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("rotate"));
    let revoked = with_kek()
        .args(["keys", "revoke", &token_kid(&before)])
        .output()
        .unwrap();
    assert!(
        revoked.status.success(),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while me(&http, &server, &before).await.0 != StatusCode::UNAUTHORIZED {
        assert!(Instant::now() < deadline, "the revoked key still verifies");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(me(&http, &server, after).await.0, StatusCode::OK);
}

/// A rolling restart: after SIGTERM the instance says "not ready" while it
/// still answers (the balancer's cue), then exits cleanly by itself.
async fn sigterm_turns_readiness_first_then_stops_gracefully(backend: Backend) {
    let db = create_db(backend);
    let mut cmd = command(&db);
    // Long enough that even a slow machine sees the window; the test only
    // waits for the signal to be handled, never for a duration.
    cmd.env("AUTH_DRAIN_DELAY_MS", "5000");
    let mut server = Server::start(cmd);
    let http = reqwest::Client::new();
    let get = |path: &str| http.get(server.url(path)).send();
    assert_eq!(get("/readyz").await.unwrap().status(), StatusCode::OK);
    let pid = server.child.id() as libc::pid_t;
    // SAFETY: kill(2) on our own child's pid; no memory is involved.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let draining = Instant::now();
    let mut said_draining = false;
    while draining.elapsed() < Duration::from_millis(4000) {
        let readyz = get("/readyz").await.unwrap();
        if readyz.status() == StatusCode::SERVICE_UNAVAILABLE {
            let body: Value = readyz.json().await.unwrap();
            assert_eq!(body["code"], "draining");
            said_draining = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(said_draining, "/readyz never said draining");
    // Still serving while draining.
    assert_eq!(get("/healthz").await.unwrap().status(), StatusCode::OK);
    let status = exited(&mut server.child, Duration::from_secs(30)).await;
    assert!(status.success(), "{status:?}");
}

async fn two_instances_share_revocations(backend: Backend) {
    let db = create_db(backend);
    let output = user_add(&db, "two@example.com", PASSWORD);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let a = Server::start(command(&db));
    let b = Server::start(command(&db));
    let http = reqwest::Client::new();

    let session = login(&http, &a, "two@example.com").await;
    let access_a = session["access_token"].as_str().unwrap();
    let refreshed = read(
        http.post(b.url("/api/v1/auth/refresh"))
            .json(&json!({"refresh_token": session["refresh_token"]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(refreshed.0, StatusCode::OK, "{}", refreshed.1);
    let access_b = refreshed.1["access_token"].as_str().unwrap();
    assert_eq!(
        me(&http, &b, access_a).await.0,
        StatusCode::OK,
        "B verifies A's token"
    );

    let logout = http
        .post(b.url("/api/v1/auth/logout"))
        .bearer_auth(access_b)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        me(&http, &b, access_a).await.1["code"],
        "token_revoked",
        "B knows at once"
    );

    // A learns it from the revocations table (default poll interval 500 ms);
    // the contract is "within 2 s".
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let (status, body) = me(&http, &a, access_a).await;
        if status == StatusCode::UNAUTHORIZED {
            assert_eq!(body["code"], "token_revoked");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "instance A still accepts a revoked session after 2 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn keys_rotate_across_restart(backend: Backend) {
    let db = create_db(backend);
    assert!(user_add(&db, "rot@example.com", PASSWORD).status.success());
    let http = reqwest::Client::new();
    let server = Server::start(command(&db));
    let old = login(&http, &server, "rot@example.com").await;
    drop(server);

    let rotate = command(&db).args(["keys", "rotate"]).output().unwrap();
    assert!(
        rotate.status.success(),
        "{}",
        String::from_utf8_lossy(&rotate.stderr)
    );
    let list = command(&db).args(["keys", "list"]).output().unwrap();
    let listing = String::from_utf8(list.stdout).unwrap();
    assert_eq!(listing.matches("active (signs)").count(), 1, "{listing}");
    assert_eq!(
        listing.matches("retired, verifies until").count(),
        1,
        "{listing}"
    );

    let server = Server::start(command(&db));
    let old_token = old["access_token"].as_str().unwrap();
    assert_eq!(
        me(&http, &server, old_token).await.0,
        StatusCode::OK,
        "old key still verifies"
    );
    let new = login(&http, &server, "rot@example.com").await;
    let kid = |token: &str| {
        use base64::Engine;
        let header = token.split('.').next().unwrap();
        let header: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(header)
                .unwrap(),
        )
        .unwrap();
        header["kid"].as_str().unwrap().to_owned()
    };
    assert_ne!(kid(old_token), kid(new["access_token"].as_str().unwrap()));
    let jwks: Value = http
        .get(server.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
}

async fn cli_user_add_and_migrate(backend: Backend) {
    let db = create_db(backend);
    let migrate = command(&db).arg("migrate").output().unwrap();
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    assert!(String::from_utf8_lossy(&migrate.stdout).contains("applied"));
    let again = command(&db).arg("migrate").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&again.stdout).trim(),
        "database is up to date"
    );

    let weak = user_add(&db, "cli@example.com", "short");
    assert!(!weak.status.success());
    assert!(
        String::from_utf8_lossy(&weak.stderr).contains("password: must be at least 8 characters")
    );
    let empty = user_add(&db, "cli@example.com", "");
    assert!(!empty.status.success());
    let bad_email = user_add(&db, "not-an-email", PASSWORD);
    assert!(String::from_utf8_lossy(&bad_email.stderr).contains("email"));

    let ok = user_add(&db, "CLI@example.com", PASSWORD);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("<cli@example.com>"));
    let duplicate = user_add(&db, "cli@example.com", PASSWORD);
    assert!(!duplicate.status.success());
    assert!(String::from_utf8_lossy(&duplicate.stderr).contains("already registered"));

    let server = Server::start(command(&db));
    login(&reqwest::Client::new(), &server, "cli@example.com").await;

    // The container's HEALTHCHECK: 0 while the server answers, 1 once not.
    let bind = server.base.trim_start_matches("http://").to_owned();
    let healthcheck = || {
        command(&db)
            .env("AUTH_BIND", &bind)
            .arg("healthcheck")
            .output()
            .unwrap()
    };
    let up = healthcheck();
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    drop(server);
    assert!(!healthcheck().status.success());
}

#[test]
fn bad_configuration_stops_the_start_with_one_line() {
    let cases = [
        ("AUTH_BIND", "localhost"),
        ("AUTH_ACCESS_TTL", "soon"),
        ("AUTH_DATABASE_URL", "mysql://db/x"),
        ("AUTH_SIGNING_ALG", "none"),
        ("AUTH_REVOCATION_POLL_MS", "60000"),
    ];
    for (key, value) in cases {
        let output = Command::new(BIN)
            .arg("serve")
            .env(key, value)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{key}={value}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with(&format!("configuration error: {key}: ")),
            "{stderr}"
        );
    }
    let dir = std::env::temp_dir().join(format!("auth-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("auth.toml");
    std::fs::write(&file, "acess_ttl = 5\n").unwrap();
    let output = Command::new(BIN)
        .args(["--config", file.to_str().unwrap(), "serve"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("acess_ttl"));
    std::fs::remove_dir_all(Path::new(&dir)).unwrap();
}

/// Instances on one PostgreSQL database must share one issuer: the default,
/// made from each instance's own bind address, is refused before anything
/// starts, with a line that says what to set.
#[test]
fn postgres_without_a_shared_issuer_refuses_to_start() {
    let output = Command::new(BIN)
        .arg("serve")
        .env_clear()
        .env("AUTH_DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .env("AUTH_BIND", "127.0.0.1:0")
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("AUTH_PUBLIC_URL"), "{stderr}");
}

/// `auth-server config-help | head -5`: when the reader is gone, a command
/// that prints ends quietly, with no panic and no stack trace.
#[test]
fn printing_into_a_closed_pipe_ends_quietly() {
    for args in [&["config-help"][..], &["--help"][..], &["keys", "list"][..]] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let dir = std::env::temp_dir().join(format!("auth-pipe-{}", std::process::id()));
        let output = Command::new(BIN)
            .args(args)
            .env("AUTH_KEYS_DIR", &dir)
            .stdout(writer)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
        assert!(!output.status.success(), "{args:?} ignored the closed pipe");
    }
}

#[test]
fn serve_refuses_an_unmigrated_database_when_told_not_to_migrate() {
    let db = create_db(Backend::Sqlite);
    let output = command(&db)
        .env("AUTH_MIGRATE_ON_START", "false")
        .arg("serve")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("run `auth-server migrate`"));
}

fn with_smtp(mut cmd: Command, port: u16) -> Command {
    cmd.env("AUTH_MAIL_TRANSPORT", "smtp")
        .env("AUTH_SMTP_HOST", "127.0.0.1")
        .env("AUTH_SMTP_PORT", port.to_string())
        .env("AUTH_SMTP_SECURITY", "none")
        .env("AUTH_OUTBOX_POLL_MS", "100");
    cmd
}

fn mail_list(db: &TestDatabase) -> String {
    let output = command(db).args(["mail", "list"]).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

async fn outbox_survives_smtp_outage_and_a_killed_server(backend: Backend) {
    let db = create_db(backend);
    assert!(
        user_add(&db, "durable@example.com", PASSWORD)
            .status
            .success()
    );
    let port = free_port();
    let http = reqwest::Client::new();

    let first = Server::start(with_smtp(command(&db), port));
    let response = http
        .post(first.url("/api/v1/auth/password/forgot"))
        .json(&json!({"email": "durable@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    tokio::time::sleep(Duration::from_millis(500)).await; // let it try and fail
    drop(first); // SIGKILL: no chance to clean up

    let listing = mail_list(&db);
    assert!(
        listing.contains("durable@example.com") && listing.contains("pending"),
        "{listing}"
    );

    let sink = mailer::test_smtp::SmtpSink::start_on(port).await;
    let _second = Server::start(with_smtp(command(&db), port));
    let mail = sink
        .wait_for("durable@example.com", Duration::from_secs(20))
        .await
        .expect("queued mail delivered after restart");
    assert!(mailer::test_smtp::six_digit_code(&mail.text_body()).is_some());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        sink.count_to("durable@example.com"),
        1,
        "delivered exactly once"
    );
    assert!(mail_list(&db).contains("sent"));
}

async fn dead_mail_is_retried_from_the_cli(backend: Backend) {
    let db = create_db(backend);
    assert!(user_add(&db, "dead@example.com", PASSWORD).status.success());
    let port = free_port();
    let http = reqwest::Client::new();
    let mut cmd = with_smtp(command(&db), port);
    cmd.env("AUTH_MAIL_MAX_ATTEMPTS", "1");
    let server = Server::start(cmd);
    let response = http
        .post(server.url("/api/v1/auth/password/forgot"))
        .json(&json!({"email": "dead@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let deadline = Instant::now() + Duration::from_secs(10);
    let id = loop {
        let listing = mail_list(&db);
        if let Some(line) = listing
            .lines()
            .find(|l| l.contains("dead@example.com") && l.contains(" dead "))
        {
            break line.split_whitespace().next().unwrap().to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "mail never marked dead: {listing}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let sink = mailer::test_smtp::SmtpSink::start_on(port).await;
    let retry = command(&db).args(["mail", "retry", &id]).output().unwrap();
    assert!(
        retry.status.success(),
        "{}",
        String::from_utf8_lossy(&retry.stderr)
    );
    assert!(
        sink.wait_for("dead@example.com", Duration::from_secs(10))
            .await
            .is_some()
    );
    let again = command(&db).args(["mail", "retry", &id]).output().unwrap();
    assert!(!again.status.success(), "a sent mail can't be retried");
}

#[test]
fn org_cli_manages_domains() {
    let db = create_db(Backend::Sqlite);
    let run = |args: &[&str]| {
        let output = command(&db).args(args).output().unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned()
                + &String::from_utf8_lossy(&output.stderr),
        )
    };
    let (ok, out) = run(&[
        "org",
        "add",
        "--name",
        "Yonsei",
        "--region",
        "Seoul",
        "--domain",
        "yonsei.ac.kr",
        "--domain",
        "YONSEI.KR",
    ]);
    assert!(ok, "{out}");
    let id = out.split_whitespace().nth(2).unwrap().to_owned();
    assert!(out.contains("yonsei.ac.kr, yonsei.kr"), "{out}");
    let (ok, out) = run(&["org", "domain", "add", &id, "mail.yonsei.ac.kr"]);
    assert!(ok, "{out}");
    let (ok, out) = run(&["org", "domain", "add", &id, "mail.yonsei.ac.kr"]);
    assert!(!ok && out.contains("already has this domain"), "{out}");
    let (ok, out) = run(&["org", "domain", "remove", &id, "yonsei.kr"]);
    assert!(ok, "{out}");
    let (ok, out) = run(&["org", "domain", "remove", &id, "yonsei.kr"]);
    assert!(!ok, "{out}");
    let (ok, out) = run(&["org", "add", "--name", "Bad", "--domain", "not a domain"]);
    assert!(!ok && out.contains("domain"), "{out}");
    let (ok, out) = run(&["org", "list"]);
    assert!(
        ok && out.contains("Yonsei")
            && out.contains("mail.yonsei.ac.kr, yonsei.ac.kr")
            && !out.contains("yonsei.kr "),
        "{out}"
    );
}

#[test]
fn clients_and_admins_are_bootstrapped_from_the_cli() {
    let db = create_db(Backend::Sqlite);
    let run = |args: &[&str], stdin: Option<&str>| {
        let mut cmd = command(&db);
        cmd.args(args);
        let output = match stdin {
            Some(input) => run_with_stdin(cmd, input),
            None => cmd.output().unwrap(),
        };
        let text = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        (output.status.success(), text)
    };
    let (ok, out) = run(&["client", "add", "--name", "buzzbook backend"], None);
    assert!(ok, "{out}");
    let secret = out
        .lines()
        .find_map(|l| l.strip_prefix("client_secret="))
        .unwrap()
        .to_owned();
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("client_id="))
        .unwrap()
        .to_owned();
    assert!(secret.len() >= 43);
    let (ok, listed) = run(&["client", "list"], None);
    assert!(
        ok && listed.contains(&id)
            && listed.contains("buzzbook backend")
            && !listed.contains(&secret),
        "{listed}"
    );
    // A relying party: redirect URIs checked, listed with its kind.
    let (ok, out) = run(
        &[
            "client",
            "add",
            "--name",
            "intranet",
            "--redirect-uri",
            "https://intranet.example/callback",
            "--first-party",
            "--scopes",
            "organization",
        ],
        None,
    );
    assert!(ok && out.contains("client_secret="), "{out}");
    let (ok, out) = run(
        &[
            "client",
            "add",
            "--name",
            "bad",
            "--redirect-uri",
            "http://intranet.example/cb",
        ],
        None,
    );
    assert!(!ok && out.contains("redirect_uri"), "{out}");
    let (ok, out) = run(&["client", "add", "--name", "cli", "--public"], None);
    assert!(
        ok && !out.contains("client_secret=") && out.contains("public"),
        "{out}"
    );
    let (ok, listed) = run(&["client", "list"], None);
    assert!(
        ok && listed.contains("first-party")
            && listed.contains("redirect https://intranet.example/callback")
            && listed.contains("public")
            && listed.contains("RS256"),
        "{listed}"
    );
    // The relying party's RS256 ID tokens got their key at registration, an
    // alternate beside the key that signs everything else.
    let (ok, keys) = run(&["keys", "list"], None);
    assert!(
        ok && keys.contains("active (signs)")
            && keys.contains("active (signs RS256 ID tokens only)"),
        "{keys}"
    );
    let (ok, out) = run(
        &[
            "client",
            "add",
            "--name",
            "secretive",
            "--redirect-uri",
            "https://intranet.example/cb",
            "--id-token-alg",
            "HS256",
        ],
        None,
    );
    assert!(!ok && out.contains("id_token_alg"), "{out}");
    let (ok, out) = run(
        &["client", "add", "--name", "odd", "--id-token-alg", "PS512"],
        None,
    );
    assert!(!ok && out.contains("PS512"), "{out}");

    let (ok, out) = run(
        &[
            "admin",
            "create",
            "--email",
            "boss@operator.test",
            "--invite",
        ],
        None,
    );
    assert!(ok, "{out}");
    assert!(out.contains("/activate?token="), "{out}");
    let (ok, out) = run(
        &[
            "admin",
            "create",
            "--email",
            "boss@operator.test",
            "--invite",
        ],
        None,
    );
    assert!(!ok && out.contains("already registered"), "{out}");
    let (ok, out) = run(
        &["admin", "create", "--email", "weak@operator.test"],
        Some("password123\n"),
    );
    assert!(!ok && out.contains("weak password"), "{out}");
    let (ok, out) = run(
        &["admin", "create", "--email", "ops@operator.test"],
        Some("a long operator passphrase\n"),
    );
    assert!(ok, "{out}");
    let (ok, out) = run(&["user", "show", "--email", "ops@operator.test"], None);
    assert!(ok && out.contains("roles: admin"), "{out}");
    let (ok, out) = run(
        &[
            "user",
            "grant",
            "--email",
            "ops@operator.test",
            "sms:send",
            "fame:read",
        ],
        None,
    );
    assert!(
        ok && out.contains("permissions: fame:read sms:send"),
        "{out}"
    );
    let (ok, out) = run(
        &["user", "grant", "--email", "ops@operator.test", "sms:nope"],
        None,
    );
    assert!(!ok && out.contains("sms:nope"), "{out}");
    let (ok, out) = run(
        &["user", "revoke", "--email", "ops@operator.test", "sms:send"],
        None,
    );
    assert!(
        ok && out.contains("permissions: fame:read") && !out.contains("sms:send"),
        "{out}"
    );
    // A lost authenticator: the operator removes the second factors.
    let (ok, out) = run(
        &["user", "mfa", "reset", "--email", "ops@operator.test"],
        None,
    );
    assert!(ok && out.contains("second factors removed"), "{out}");
    let (ok, out) = run(
        &["user", "mfa", "reset", "--email", "nobody@operator.test"],
        None,
    );
    assert!(!ok, "{out}");
    let (ok, out) = run(&["audit", "verify"], None);
    assert!(ok && out.contains("intact"), "{out}");
}

/// `kill -9` in the middle of a burst of signups: every signup that was
/// answered 201 is in the database, and every signup in the database is
/// whole (its user, its code and its verification mail: one transaction).
async fn a_killed_server_loses_no_answered_signup_and_half_writes_nothing(backend: Backend) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let db = create_db(backend);
    let mut cmd = command(&db);
    cmd.env("AUTH_THROTTLE_MAIL_IP", "off")
        .env("AUTH_ARGON2_MAX_CONCURRENT", "2");
    let server = Server::start(cmd);
    let http = reqwest::Client::new();
    let answered = Arc::new(AtomicUsize::new(0));
    let mut burst = tokio::task::JoinSet::new();
    for n in 0..60 {
        let (http, url, answered) = (
            http.clone(),
            server.url("/api/v1/auth/signup"),
            answered.clone(),
        );
        burst.spawn(async move {
            let email = format!("burst{n}@example.com");
            let response = http
                .post(url)
                .json(&json!({"email": email, "password": PASSWORD}))
                .send()
                .await;
            let created = matches!(&response, Ok(r) if r.status() == StatusCode::CREATED);
            if created {
                answered.fetch_add(1, Ordering::SeqCst);
            }
            (email, created)
        });
    }
    // Kill it mid-burst: once some signups are answered, many are not yet.
    let deadline = Instant::now() + Duration::from_secs(60);
    while answered.load(Ordering::SeqCst) < 10 {
        assert!(Instant::now() < deadline, "no signups answered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(server); // SIGKILL
    let mut created = Vec::new();
    while let Some(result) = burst.join_next().await {
        let (email, ok) = result.unwrap();
        if ok {
            created.push(email);
        }
    }
    assert!(
        created.len() < 60,
        "the kill came too late to test anything"
    );

    let url = db.url.clone();
    let (users, codes, mails) = tokio::task::spawn_blocking(move || {
        use diesel::prelude::*;
        use storage::schema::{email_codes, outbox, users};
        let pool = storage::connect(&url, &storage::PoolOptions::default()).unwrap();
        let mut conn = pool.get().unwrap();
        let burst = |column: &str| column.starts_with("burst");
        let users: Vec<String> = users::table.select(users::email).load(&mut conn).unwrap();
        let codes: Vec<String> = email_codes::table
            .select(email_codes::email)
            .load(&mut conn)
            .unwrap();
        let mails: Vec<String> = outbox::table
            .select(outbox::recipient)
            .load(&mut conn)
            .unwrap();
        let only = |rows: Vec<String>| {
            let mut rows: Vec<String> = rows.into_iter().filter(|r| burst(r)).collect();
            rows.sort();
            rows
        };
        (only(users), only(codes), only(mails))
    })
    .await
    .unwrap();
    for email in &created {
        assert!(
            users.contains(email),
            "{email} was answered 201 but is gone"
        );
    }
    assert_eq!(
        users, codes,
        "every stored signup has its code, and no code lacks its user"
    );
    assert_eq!(
        users, mails,
        "every stored signup has its mail, and no mail lacks its user"
    );
    eprintln!(
        "kill -9 burst: {} answered, {} stored, none half-written",
        created.len(),
        users.len()
    );
}

/// The race, on the real binary: 200 wrong second-factor codes at
/// once for one account, split across two `auth-server` processes on one
/// PostgreSQL database, with the account's budget at 20 codes. Exactly 20
/// get past the budget and are checked — each one a counted, audited wrong
/// code — and the other 180 are refused with 429 before any check. The
/// budget lives in the database, so afterwards even a right code waits.
///
/// The codes are spread over 40 `mfa_token`s, five each (five wrong codes
/// kill a token), so every code admitted is checked and counted: what is
/// measured is the account's budget alone, not the tokens dying.
#[tokio::test]
async fn wrong_second_factor_codes_racing_across_two_processes_count_exactly() {
    use std::collections::BTreeMap;
    use totp_rs::{Algorithm, Secret, TOTP};

    const BUDGET: usize = 20;
    const BURST: usize = 200;
    const WRONG_CODES_PER_TOKEN: usize = 5; // a token dies after five
    const TOKENS: usize = BURST / WRONG_CODES_PER_TOKEN;

    let db = create_db(Backend::Postgres);
    let added = user_add(&db, "race@example.com", PASSWORD);
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let start = || {
        let mut cmd = command(&db);
        cmd.env("AUTH_THROTTLE_MFA_ACCOUNT", format!("{BUDGET}/1h"))
            // The logins that fetch the tokens are not what is tested.
            .env("AUTH_THROTTLE_LOGIN_ACCOUNT", "off")
            .env("AUTH_THROTTLE_LOGIN_IP", "off")
            // Room for the burst to really run in parallel in each process.
            .env("AUTH_WORKERS", "2")
            .env("AUTH_DB_POOL_SIZE", "8");
        Server::start(cmd)
    };
    let servers = [start(), start()];
    let http = reqwest::Client::new();
    let post = |server: &Server, path: &str, bearer: Option<&str>, body: Value| {
        let mut request = http.post(server.url(path)).json(&body);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        async move { read(request.send().await.unwrap()).await }
    };

    // Enrol TOTP: the secret from one process, the first code to the other.
    let session = login(&http, &servers[0], "race@example.com").await;
    let access = session["access_token"].as_str().unwrap();
    let (status, enrolment) = post(
        &servers[0],
        "/api/v1/auth/mfa/totp",
        Some(access),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{enrolment}");
    let secret = Secret::Encoded(enrolment["secret"].as_str().unwrap().to_owned())
        .to_bytes()
        .unwrap();
    let app = TOTP::new(Algorithm::SHA1, 6, 1, 30, secret).unwrap();
    let right_code = || app.generate(chrono::Utc::now().timestamp() as u64);
    let (status, body) = post(
        &servers[1],
        "/api/v1/auth/mfa/totp/confirm",
        Some(access),
        json!({"code": right_code()}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // One mfa_token per five wrong codes, from both processes.
    let mut tokens = Vec::with_capacity(TOKENS);
    for n in 0..TOKENS {
        let (status, body) = post(
            &servers[n % 2],
            "/api/v1/auth/login",
            None,
            json!({"login": "race@example.com", "password": PASSWORD}),
        )
        .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("mfa_required")),
            "{body}"
        );
        tokens.push(body["mfa_token"].as_str().unwrap().to_owned());
    }

    // The burst: request n goes to token n % 40 and to process (n / 40) % 2,
    // so each token's five codes alternate between the processes.
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(BURST));
    let mut burst = tokio::task::JoinSet::new();
    for n in 0..BURST {
        let process = (n / TOKENS) % 2;
        let url = servers[process].url("/api/v1/auth/mfa/verify");
        let body = json!({
            "mfa_token": tokens[n % TOKENS],
            "method": "totp",
            // Seven digits: never a right code.
            "code": "0000000",
        });
        let (http, barrier) = (http.clone(), barrier.clone());
        burst.spawn(async move {
            barrier.wait().await;
            let response = http.post(url).json(&body).send().await.unwrap();
            let retry_after = response.headers().contains_key("retry-after");
            let (status, body) = read(response).await;
            let code = body["code"].as_str().unwrap_or_default().to_owned();
            (process, status.as_u16(), code, retry_after)
        });
    }
    let mut answers = BTreeMap::<(u16, String), usize>::new();
    let mut checked_by = [0_usize; 2];
    while let Some(answer) = burst.join_next().await {
        let (process, status, code, retry_after) = answer.unwrap();
        if status == 429 {
            assert!(retry_after, "429 without Retry-After");
        } else {
            checked_by[process] += 1;
        }
        *answers.entry((status, code)).or_default() += 1;
    }
    assert_eq!(
        answers,
        BTreeMap::from([
            ((401, "invalid_code".to_owned()), BUDGET),
            ((429, "too_many_attempts".to_owned()), BURST - BUDGET),
        ]),
        "checked by process A, B: {checked_by:?}"
    );
    eprintln!("wrong codes checked by process A, B: {checked_by:?}");

    // The database agrees: as many wrong codes on the tokens and in the
    // audit log as were answered, and the log's chain, appended to by two
    // processes at once, is whole.
    let url = db.url.clone();
    let (failures, used, audited, chain) = tokio::task::spawn_blocking(move || {
        use diesel::prelude::*;
        use storage::schema::mfa_challenges;
        let pool = storage::connect(&url, &storage::PoolOptions::default()).unwrap();
        let mut conn = pool.get().unwrap();
        let rows: Vec<(i64, Option<chrono::NaiveDateTime>)> = mfa_challenges::table
            .select((mfa_challenges::failures, mfa_challenges::used_at))
            .load(&mut conn)
            .unwrap();
        let failures: i64 = rows.iter().map(|(f, _)| f).sum();
        let used = rows.iter().filter(|(_, u)| u.is_some()).count();
        let filter = storage::audit::AuditFilter {
            event: Some("mfa.failed".to_owned()),
            ..Default::default()
        };
        let audited = storage::audit::page(&mut conn, &filter, None, 1000)
            .unwrap()
            .len();
        let chain = storage::audit::verify_chain(&mut conn).unwrap();
        (failures, used, audited, chain)
    })
    .await
    .unwrap();
    assert_eq!(failures, BUDGET as i64, "wrong codes counted on the tokens");
    assert_eq!(used, 0, "no token was spent");
    assert_eq!(audited, BUDGET, "mfa.failed audit rows");
    assert!(
        matches!(chain, storage::audit::ChainCheck::Intact { .. }),
        "{chain:?}"
    );

    // The budget is spent for the account on both processes: a new token
    // with the right code is refused before the code is looked at.
    for server in &servers {
        let (status, body) = post(
            server,
            "/api/v1/auth/login",
            None,
            json!({"login": "race@example.com", "password": PASSWORD}),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        let (status, body) = post(
            server,
            "/api/v1/auth/mfa/verify",
            None,
            json!({"mfa_token": body["mfa_token"], "method": "totp", "code": right_code()}),
        )
        .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::TOO_MANY_REQUESTS, Some("too_many_attempts")),
            "{body}"
        );
    }
}

fn make_certificate(cert: &Path, key: &Path, name: &str) {
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", &format!("/CN={name}")])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(key)
        .arg("-out")
        .arg(cert)
        .stderr(Stdio::null())
        .status()
        .expect("openssl is needed to make test certificates");
    assert!(status.success());
}

fn der(cert: &Path) -> Vec<u8> {
    let output = Command::new("openssl")
        .args(["x509", "-outform", "DER", "-in"])
        .arg(cert)
        .output()
        .unwrap();
    assert!(output.status.success());
    output.stdout
}

/// HTTPS straight from the server: HSTS is sent, and `SIGHUP` swaps in a
/// renewed certificate without a restart — a broken one is refused and the
/// current one kept.
#[tokio::test]
async fn tls_certificate_reloads_on_sighup() {
    let db = create_db(Backend::Sqlite);
    let (cert, key) = (db.dir.join("cert.pem"), db.dir.join("key.pem"));
    make_certificate(&cert, &key, "first");
    let first = der(&cert);
    let mut cmd = command(&db);
    cmd.env("AUTH_TLS_CERT", &cert).env("AUTH_TLS_KEY", &key);
    let server = Server::start(cmd);
    assert!(server.base.starts_with("https://"), "{}", server.base);
    let served = || async {
        // A new client each time: no pooled connection and no resumed TLS
        // session, so the handshake shows the certificate served now.
        let http = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .tls_info(true)
            .build()
            .unwrap();
        let response = http.get(server.url("/healthz")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["strict-transport-security"],
            "max-age=31536000; includeSubDomains"
        );
        response
            .extensions()
            .get::<reqwest::tls::TlsInfo>()
            .and_then(|info| info.peer_certificate())
            .expect("a peer certificate")
            .to_vec()
    };
    assert_eq!(served().await, first);
    let hangup = || {
        let status = Command::new("kill")
            .args(["-HUP", &server.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };

    std::fs::write(&cert, "not a certificate").unwrap();
    hangup();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        served().await,
        first,
        "a broken file keeps the current certificate"
    );

    make_certificate(&cert, &key, "second");
    let second = der(&cert);
    hangup();
    let deadline = Instant::now() + Duration::from_secs(10);
    while served().await != second {
        assert!(
            Instant::now() < deadline,
            "the renewed certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `AUTH_KEY_ENCRYPTION_KEY` seals the key files; without it (or with
/// another) the CLI and the server refuse them with a line saying what to set.
#[test]
fn key_files_are_encrypted_at_rest_when_a_key_is_given() {
    let db = create_db(Backend::Sqlite);
    let sealing_key = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc="; // 32 × 0x07
    let run = |key: Option<&str>, args: &[&str]| {
        let mut cmd = command(&db);
        if let Some(key) = key {
            cmd.env("AUTH_KEY_ENCRYPTION_KEY", key);
        }
        cmd.args(args).output().unwrap()
    };
    let rotated = run(Some(sealing_key), &["keys", "rotate"]);
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    let files: Vec<_> = std::fs::read_dir(db.dir.join("keys"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    assert!(!files.is_empty());
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(
            text.starts_with("sealed:v1:") && !text.contains("private_key"),
            "{text}"
        );
    }
    let listed = run(Some(sealing_key), &["keys", "list"]);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );

    let without = run(None, &["keys", "list"]);
    assert!(!without.status.success());
    assert!(String::from_utf8_lossy(&without.stderr).contains("AUTH_KEY_ENCRYPTION_KEY"));
    let malformed = run(Some("too-short"), &["keys", "list"]);
    assert!(!malformed.status.success());
    assert!(String::from_utf8_lossy(&malformed.stderr).contains("AUTH_KEY_ENCRYPTION_KEY"));
}

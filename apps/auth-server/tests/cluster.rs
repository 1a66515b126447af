//! Three instances of the real binary that share nothing but PostgreSQL:
//! each its own empty folder; in common only the database URL, the
//! key-encryption key and the public URL. A small TCP balancer of the
//! test's own sits in front, as a load balancer would: round robin over the
//! instances whose `/readyz` says ready, the next one when a connection is
//! refused.
//!
//! Checked: tokens from any instance work on all; a logout anywhere is
//! refused everywhere; a key rotated from the CLI is served and used by
//! all; under steady load, SIGKILL of one instance fails only the requests
//! it had in flight, a rolling SIGTERM restart fails none, and PostgreSQL
//! restarted answers 503 with `Retry-After` until it is back, then full
//! service, with no restart of ours. The figures (propagation, failures,
//! drain time) are printed; speed is the bench's to judge, so only
//! generous liveness bounds are asserted here.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::{Connection, RunQueryDsl};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::own_postgres::OwnPostgres;
use support::*;
use tokio::net::{TcpListener, TcpStream};

const BIN: &str = env!("CARGO_BIN_EXE_auth-server");
/// The key-encryption key the instances share (32 random bytes, base64).
const KEK: &str = "SsuqVwvGGlVGyN1NuSTlljTXzyb+iM9igdn3NTYy8Jc=";
const CLIENTS: usize = 6;

/// What every instance and CLI run is given: nothing else is shared.
struct Shared {
    database_url: String,
    public_url: String,
    root: PathBuf,
}

impl Shared {
    fn command(&self, folder: &Path) -> Command {
        std::fs::create_dir_all(folder).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AUTH_DATABASE_URL", &self.database_url)
            .env("AUTH_KEY_ENCRYPTION_KEY", KEK)
            .env("AUTH_PUBLIC_URL", &self.public_url)
            .env("AUTH_BIND", "127.0.0.1:0")
            .env("AUTH_WORKERS", "1")
            .env("AUTH_DB_POOL_SIZE", "4")
            .env("AUTH_DB_POOL_TIMEOUT_MS", "1000")
            .env("AUTH_MFA_REQUIRED_ROLES", "")
            // Cheap hashing: the load is refreshes, not password guessing.
            .env("AUTH_ARGON2_MEMORY_KIB", "8192")
            .env("AUTH_ARGON2_ITERATIONS", "1")
            // Only the pushed notice can make a rotation show up in time.
            .env("AUTH_KEY_RELOAD", "3600")
            // The fallback poll is slow, so the figures measure the push.
            .env("AUTH_REVOCATION_POLL_MS", "2000")
            .env("AUTH_DRAIN_DELAY_MS", "600")
            .env("RUST_LOG", "warn")
            .current_dir(folder);
        cmd
    }

    fn folder(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
}

/// A stored signing key's row, as the test reads it from the database.
#[derive(diesel::QueryableByName)]
struct KeyRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    kid: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    document: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    created_at: i64,
}

/// One `auth-server serve`, killed on drop.
struct Instance {
    child: Child,
    addr: SocketAddr,
}

impl Instance {
    /// Starts the instance with its own folder and waits until it listens.
    async fn start(shared: &Arc<Shared>, name: &str) -> Instance {
        let mut cmd = shared.command(&shared.folder(name));
        tokio::task::spawn_blocking(move || {
            let mut child = cmd
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap();
            let stdout = child.stdout.take().unwrap();
            let mut lines = BufReader::new(stdout).lines();
            let line = match lines.next() {
                Some(Ok(line)) => line,
                other => {
                    let _ = child.kill();
                    panic!("instance exited before listening: {other:?}");
                }
            };
            let base = line
                .strip_prefix("listening on http://")
                .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
            Instance {
                child,
                addr: base.parse().unwrap(),
            }
        })
        .await
        .unwrap()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn login(&self, http: &reqwest::Client, email: &str) -> Value {
        login_at(http, &self.url(""), email).await
    }

    async fn jwks(&self, http: &reqwest::Client) -> Value {
        let response = http
            .get(self.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap();
        response.json().await.unwrap()
    }

    async fn me(&self, http: &reqwest::Client, token: &str) -> StatusCode {
        me_at(http, &self.url(""), token).await.0
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        assert_eq!(
            unsafe { libc::kill(self.child.id() as libc::pid_t, signal) },
            0
        );
    }

    /// Waits for the process to end (after a signal).
    async fn exited(&mut self) -> std::process::ExitStatus {
        exited(&mut self.child, Duration::from_secs(60)).await
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The balancer's view of one instance.
struct Upstream {
    addr: SocketAddr,
    ready: bool,
}

/// A TCP balancer: round robin over the ready instances (all of them when
/// none is ready, so clients hear the instances' own 503s), trying the next
/// one when a connection is refused. Readiness is `/readyz`, every 50 ms.
struct Balancer {
    addr: SocketAddr,
    upstreams: Arc<Mutex<Vec<Upstream>>>,
    /// When a connection to an instance was first refused, or its
    /// readiness first failed: the moment the balancer "noticed".
    noticed_down: Arc<Mutex<Option<Instant>>>,
}

impl Balancer {
    async fn start() -> Balancer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let balancer = Balancer {
            addr: listener.local_addr().unwrap(),
            upstreams: Arc::default(),
            noticed_down: Arc::default(),
        };
        let upstreams = balancer.upstreams.clone();
        let noticed = balancer.noticed_down.clone();
        tokio::spawn(async move {
            let next = Arc::new(AtomicUsize::new(0));
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let (upstreams, noticed, next) = (upstreams.clone(), noticed.clone(), next.clone());
                tokio::spawn(async move {
                    let candidates: Vec<SocketAddr> = {
                        let upstreams = upstreams.lock().unwrap();
                        let ready: Vec<SocketAddr> = upstreams
                            .iter()
                            .filter(|u| u.ready)
                            .map(|u| u.addr)
                            .collect();
                        if ready.is_empty() {
                            upstreams.iter().map(|u| u.addr).collect()
                        } else {
                            ready
                        }
                    };
                    if candidates.is_empty() {
                        return;
                    }
                    let first = next.fetch_add(1, Ordering::Relaxed);
                    for i in 0..candidates.len() {
                        let addr = candidates[(first + i) % candidates.len()];
                        match TcpStream::connect(addr).await {
                            Ok(mut upstream) => {
                                let mut client = client;
                                let _ =
                                    tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                                return;
                            }
                            Err(_) => {
                                noticed.lock().unwrap().get_or_insert_with(Instant::now);
                                mark(&upstreams, addr, false);
                            }
                        }
                    }
                });
            }
        });
        let upstreams = balancer.upstreams.clone();
        let noticed = balancer.noticed_down.clone();
        tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_millis(2000))
                .pool_max_idle_per_host(0)
                .build()
                .unwrap();
            loop {
                let addrs: Vec<SocketAddr> =
                    upstreams.lock().unwrap().iter().map(|u| u.addr).collect();
                for addr in addrs {
                    let ready = matches!(
                        http.get(format!("http://{addr}/readyz")).send().await,
                        Ok(r) if r.status() == StatusCode::OK
                    );
                    if !ready {
                        noticed.lock().unwrap().get_or_insert_with(Instant::now);
                    }
                    mark(&upstreams, addr, ready);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        balancer
    }

    /// Sends to `addr` from now on (taken as ready: it has just listened).
    fn add(&self, addr: SocketAddr) {
        self.upstreams
            .lock()
            .unwrap()
            .push(Upstream { addr, ready: true });
    }

    fn remove(&self, addr: SocketAddr) {
        self.upstreams.lock().unwrap().retain(|u| u.addr != addr);
    }

    fn forget_notice(&self) {
        *self.noticed_down.lock().unwrap() = None;
    }

    fn noticed_at(&self) -> Option<Instant> {
        *self.noticed_down.lock().unwrap()
    }
}

fn mark(upstreams: &Mutex<Vec<Upstream>>, addr: SocketAddr, ready: bool) {
    for upstream in upstreams.lock().unwrap().iter_mut() {
        if upstream.addr == addr {
            upstream.ready = ready;
        }
    }
}

/// What one request through the balancer came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Ok,
    /// 503 with a `Retry-After` (the database is away).
    Unavailable,
    Failed,
}

/// Outcomes counted by phase of the test, with when each request started.
#[derive(Default)]
struct Tally {
    requests: Mutex<Vec<(Instant, Outcome)>>,
    failures: Mutex<Vec<String>>,
}

impl Tally {
    fn record(&self, started: Instant, outcome: Outcome, what: impl FnOnce() -> String) {
        self.requests.lock().unwrap().push((started, outcome));
        if outcome == Outcome::Failed {
            self.failures.lock().unwrap().push(what());
        }
    }

    /// What failed so far, for assertion messages.
    fn failures(&self) -> Vec<String> {
        self.failures.lock().unwrap().clone()
    }

    /// (ok, unavailable, failed) among requests started in `from..to`.
    fn between(&self, from: Instant, to: Instant) -> (usize, usize, usize) {
        let mut counts = (0, 0, 0);
        for (started, outcome) in self.requests.lock().unwrap().iter() {
            if *started >= from && *started < to {
                match outcome {
                    Outcome::Ok => counts.0 += 1,
                    Outcome::Unavailable => counts.1 += 1,
                    Outcome::Failed => counts.2 += 1,
                }
            }
        }
        counts
    }
}

/// One client under load: refresh, then `/me` with the new access token,
/// over and over, each request on a new connection (so the balancer picks
/// an instance per request). A refresh whose answer was lost is sent again
/// with the same token (the reuse grace window gives it a sibling), so a
/// lost answer never breaks the chain; the final refresh proves it.
async fn client_loop(base: String, email: String, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let mut tokens = loop {
        let response = http
            .post(format!("{base}/api/v1/auth/login"))
            .json(&json!({"login": email, "password": PASSWORD}))
            .send()
            .await;
        if let Ok(response) = response
            && response.status() == StatusCode::OK
        {
            break response.json::<Value>().await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
        let response = http
            .post(format!("{base}/api/v1/auth/refresh"))
            .json(&json!({ "refresh_token": refresh_token }))
            .send()
            .await;
        let (outcome, body) = classify(response).await;
        tally.record(started, outcome, || format!("refresh: {body}"));
        if outcome != Outcome::Ok {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        tokens = body;
        let started = Instant::now();
        let response = http
            .get(format!("{base}/api/v1/auth/me"))
            .bearer_auth(tokens["access_token"].as_str().unwrap())
            .send()
            .await;
        let (outcome, body) = classify(response).await;
        tally.record(started, outcome, || format!("me: {body}"));
    }
    // The chain is whole: the last token still refreshes.
    let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = http
            .post(format!("{base}/api/v1/auth/refresh"))
            .json(&json!({ "refresh_token": refresh_token }))
            .send()
            .await;
        match classify(response).await {
            (Outcome::Ok, _) => return,
            (Outcome::Failed, body) => panic!("{email}'s refresh chain is broken: {body}"),
            (Outcome::Unavailable, _) => {
                assert!(Instant::now() < deadline, "still unavailable");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn classify(response: reqwest::Result<reqwest::Response>) -> (Outcome, Value) {
    let response = match response {
        Ok(response) => response,
        Err(e) => return (Outcome::Failed, json!(format!("transport: {e}"))),
    };
    let status = response.status();
    let retry_after = response.headers().contains_key("retry-after");
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let outcome = match status {
        s if s.is_success() => Outcome::Ok,
        StatusCode::SERVICE_UNAVAILABLE if retry_after => Outcome::Unavailable,
        _ => Outcome::Failed,
    };
    let shown = if outcome == Outcome::Ok {
        body
    } else {
        json!(format!("{status} {body}"))
    };
    (outcome, shown)
}

fn user_add(shared: &Shared, email: &str) {
    let mut cmd = shared.command(&shared.folder("cli"));
    cmd.args(["user", "add", "--email", email, "--name", "Load Client"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_share_nothing_but_postgres() {
    let postgres = Arc::new(
        tokio::task::spawn_blocking(OwnPostgres::start)
            .await
            .unwrap(),
    );
    let balancer = Balancer::start().await;
    let root = std::env::temp_dir().join(format!("auth-cluster-{}", uuid::Uuid::new_v4().simple()));
    let shared = Arc::new(Shared {
        database_url: postgres.url(),
        public_url: format!("http://{}", balancer.addr),
        root: root.clone(),
    });

    // Three instances start together on an empty database: they migrate
    // in turn and agree on one signing key and one of each secret.
    let (a, b, c) = tokio::join!(
        Instance::start(&shared, "a"),
        Instance::start(&shared, "b"),
        Instance::start(&shared, "c"),
    );
    let mut instances = vec![a, b, c];
    for instance in &instances {
        balancer.add(instance.addr);
    }
    for name in ["a", "b", "c"] {
        let folder = shared.folder(name);
        let keys = folder.join("var").join("keys");
        assert!(
            !keys.exists() || std::fs::read_dir(&keys).unwrap().next().is_none(),
            "{name} wrote keys to its folder: they belong in the database"
        );
    }
    let shared_for_cli = shared.clone();
    tokio::task::spawn_blocking(move || {
        user_add(&shared_for_cli, "ada@example.test");
        for i in 0..CLIENTS {
            user_add(&shared_for_cli, &format!("load{i}@example.test"));
        }
    })
    .await
    .unwrap();

    let http = reqwest::Client::new();
    // Tokens from any instance work on all.
    let mut jwks = Vec::new();
    for instance in &instances {
        jwks.push(instance.jwks(&http).await);
    }
    assert!(jwks.iter().all(|j| *j == jwks[0]), "{jwks:?}");
    for issuer in &instances {
        let session = issuer.login(&http, "ada@example.test").await;
        let access = session["access_token"].as_str().unwrap();
        for verifier in &instances {
            assert_eq!(verifier.me(&http, access).await, StatusCode::OK);
        }
    }

    // A logout anywhere is refused everywhere; how long it takes is measured.
    let mut propagation = Vec::new();
    for round in 0..30 {
        let (at, elsewhere) = (&instances[round % 3], &instances[(round + 1) % 3]);
        let session = at.login(&http, "ada@example.test").await;
        let access = session["access_token"].as_str().unwrap().to_owned();
        // The other instance has seen (and cached) the token first.
        assert_eq!(elsewhere.me(&http, &access).await, StatusCode::OK);
        let (status, _) = read(
            http.post(at.url("/api/v1/auth/logout"))
                .bearer_auth(&access)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert!(status.is_success(), "{status}");
        let logged_out = Instant::now();
        loop {
            if elsewhere.me(&http, &access).await == StatusCode::UNAUTHORIZED {
                propagation.push(logged_out.elapsed());
                break;
            }
            assert!(
                logged_out.elapsed() < Duration::from_secs(5),
                "a logout on one instance was still accepted on another after 5 s"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    propagation.sort();
    println!(
        "logout → refusal elsewhere over {} rounds: p50 {:?}, p99 {:?}, max {:?}",
        propagation.len(),
        percentile(&propagation, 0.5),
        percentile(&propagation, 0.99),
        propagation.last().unwrap()
    );

    // The sealed row of the key in use, as a backup would hold it.
    let mut db = diesel::PgConnection::establish(&shared.database_url).unwrap();
    let old_row: Vec<KeyRow> =
        diesel::sql_query("SELECT kid, document, created_at FROM signing_keys")
            .load(&mut db)
            .unwrap();
    assert_eq!(old_row.len(), 1, "one signing key for the three instances");

    // A key rotated from the CLI is served and used by every instance (the
    // re-read is an hour away: only the database's notice explains it).
    let shared_for_cli = shared.clone();
    let rotated = tokio::task::spawn_blocking(move || {
        let output = shared_for_cli
            .command(&shared_for_cli.folder("cli"))
            .args(["keys", "rotate"])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        Instant::now()
    })
    .await
    .unwrap();
    let new_kid = {
        let list = shared
            .command(&shared.folder("cli"))
            .args(["keys", "list"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&list.stdout).into_owned();
        text.lines()
            .find(|l| l.contains("active (signs)"))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_else(|| panic!("no active key in {text}"))
            .to_owned()
    };
    for instance in &instances {
        loop {
            let session = instance.login(&http, "ada@example.test").await;
            let access = session["access_token"].as_str().unwrap();
            if token_kid(access) == new_kid {
                for verifier in &instances {
                    assert_eq!(verifier.me(&http, access).await, StatusCode::OK);
                }
                break;
            }
            assert!(
                rotated.elapsed() < Duration::from_secs(10),
                "{} still signs with the old key",
                instance.addr
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let jwks = instance.jwks(&http).await;
        assert!(jwks.to_string().contains(&new_kid), "{jwks}");
    }
    println!(
        "key rotation → every instance signing with it: {:?}",
        rotated.elapsed()
    );

    // The database rolled back to the old key (its sealed row replayed, the
    // new one deleted): running instances refuse to sign with an older key.
    let new_row: Vec<KeyRow> =
        diesel::sql_query("SELECT kid, document, created_at FROM signing_keys WHERE kid = $1")
            .bind::<diesel::sql_types::Text, _>(&new_kid)
            .load(&mut db)
            .unwrap();
    let replay = |rows: &[KeyRow], delete: &str| {
        format!(
            "BEGIN; DELETE FROM signing_keys WHERE kid = '{delete}'; \
             UPDATE signing_keys SET document = '{}', retired_at = NULL WHERE kid = '{}'; COMMIT",
            rows[0].document, rows[0].kid
        )
    };
    db.batch_execute(&replay(&old_row, &new_kid)).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    for instance in &instances {
        let session = instance.login(&http, "ada@example.test").await;
        assert_eq!(
            token_kid(session["access_token"].as_str().unwrap()),
            new_kid,
            "a replayed older key must not sign again"
        );
    }
    db.batch_execute(&format!(
        "INSERT INTO signing_keys (kid, document, created_at) VALUES ('{}', '{}', {})",
        new_row[0].kid, new_row[0].document, new_row[0].created_at
    ))
    .unwrap();

    // Steady load through the balancer.
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let base = format!("http://{}", balancer.addr);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            tokio::spawn(client_loop(
                base.clone(),
                format!("load{i}@example.test"),
                stop.clone(),
                tally.clone(),
            ))
        })
        .collect();
    let steady = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;

    // SIGKILL one instance.
    balancer.forget_notice();
    let killed_at = Instant::now();
    instances[2].signal(libc::SIGKILL);
    instances[2].exited().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let noticed = balancer
        .noticed_at()
        .expect("the balancer noticed the kill");
    let after_kill = Instant::now();
    let (_, _, lost) = tally.between(steady, noticed);
    let (ok_after, _, failed_after) = tally.between(noticed, after_kill);
    println!(
        "SIGKILL: {lost} requests failed before the balancer noticed ({:?} after the kill); \
         {failed_after} failed of {} after",
        noticed - killed_at,
        ok_after + failed_after
    );
    assert!(
        failed_after * 1000 < ok_after + failed_after,
        "{failed_after} of {} requests failed after the balancer noticed: {:?}",
        ok_after + failed_after,
        tally.failures()
    );
    assert!(
        lost <= CLIENTS,
        "only requests in flight on the killed instance may fail: {:?}",
        tally.failures()
    );
    let old = instances.remove(2);
    balancer.remove(old.addr);
    drop(old);
    let replacement = Instance::start(&shared, "c").await;
    balancer.add(replacement.addr);
    instances.push(replacement);

    // A rolling restart: SIGTERM each instance in turn, start it again.
    let rolling = Instant::now();
    let mut drain_times = Vec::new();
    for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
        let signalled = Instant::now();
        instances[i].signal(libc::SIGTERM);
        let status = instances[i].exited().await;
        assert!(status.success(), "{name} after SIGTERM: {status:?}");
        drain_times.push(signalled.elapsed());
        balancer.remove(instances[i].addr);
        let restarted = Instance::start(&shared, name).await;
        balancer.add(restarted.addr);
        instances[i] = restarted;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let rolled = Instant::now();
    let (ok, unavailable, failed) = tally.between(rolling, rolled);
    println!(
        "rolling restart: {failed} failed, {unavailable} unavailable of {} requests; \
         SIGTERM → exit {drain_times:?}",
        ok + unavailable + failed
    );
    assert_eq!((failed, unavailable), (0, 0), "{:?}", tally.failures());

    // PostgreSQL restarted under load.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pg = postgres.clone();
    let db_down = Instant::now();
    tokio::task::spawn_blocking(move || pg.stop())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pg = postgres.clone();
    tokio::task::spawn_blocking(move || pg.pg_ctl_start())
        .await
        .unwrap();
    let db_back = Instant::now();
    let recovered = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (ok, unavailable, _) =
            tally.between(Instant::now() - Duration::from_millis(500), Instant::now());
        if ok > 0 && unavailable == 0 {
            break Instant::now();
        }
        assert!(
            db_back.elapsed() < Duration::from_secs(30),
            "no full service 30 s after PostgreSQL returned"
        );
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let end = Instant::now();
    let (ok, unavailable, failed) = tally.between(db_down, end);
    println!(
        "PostgreSQL restart: {unavailable} answered 503 + Retry-After, {failed} failed, {ok} ok; \
         full service {:?} after it returned",
        recovered - db_back
    );
    assert!(unavailable > 0, "nothing noticed the database was away");
    assert_eq!(failed, 0, "{:?}", tally.failures());
    let (_, unavailable_after, failed_after) = tally.between(recovered, end);
    assert_eq!((unavailable_after, failed_after), (0, 0));

    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    let (ok, unavailable, failed) = tally.between(steady, Instant::now());
    println!("in all: {ok} ok, {unavailable} unavailable, {failed} failed");
    drop(instances);
    let _ = std::fs::remove_dir_all(root);
}

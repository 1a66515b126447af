//! Login with TOTP: what a second factor adds to a login.
//!
//! The flow as an app runs it: `POST /api/v1/auth/login` answers 401
//! `mfa_required` with an `mfa_token`, then `POST /api/v1/auth/mfa/verify`
//! with the code an authenticator computes from the enrolled secret answers
//! the tokens. It is measured next to a password-only login (the bench user)
//! driven by the same client, so the difference is the server's: this
//! built-in reqwest client, not wrk, since each login needs a code computed
//! between its two requests. Two loads: the login run's connections (the
//! server saturated: Argon2 bounds both flows, so this gives throughput) and
//! one connection (the latency a user sees on an otherwise idle server).
//!
//! A TOTP code is accepted once per 30 s time step per user (no replay), so
//! no user can log in twice in one step: the flow runs over many users,
//! each taken again only in a later step. They are seeded straight into the
//! database (one shared Argon2 hash, as for the seeded runs) and enrolled
//! through the API, as many as one run needs at the rate the password-only
//! login just reached, with a margin. Before each TOTP run the bench waits
//! (unmeasured) for the next time step if too few users are free in the
//! current one; a connection that still finds no user free waits for the
//! next step too, unmeasured, and the run reports it as a stall (its
//! throughput then understates the server's).
//!
//! Enrolment confirms each secret with the previous step's code (one step of
//! drift is accepted), so the current step is still free for the first
//! measured login; every measured login sends the current step's code.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use reqwest::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::task::JoinSet;
use totp_rs::{Algorithm, Secret, TOTP};

use super::load::Measured;
use super::seed::{self, SEEDED_PASSWORD};
use super::server::{EMAIL, Env, PASSWORD};

const STEP_SECS: u64 = 30;
const WARM_UP: Duration = Duration::from_millis(300);
/// Users for one run: this many times what the password-only login's rate
/// would use up in the run, plus one per connection.
const USER_MARGIN: f64 = 1.3;
/// Enrolments in flight at once (each is one login, so one Argon2 hash).
const ENROL_CONNECTIONS: usize = 8;

/// The TOTP login against the password-only login, at two loads.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TotpLogin {
    /// Users enrolled with TOTP for the runs.
    pub users: usize,
    pub enrol_seconds: f64,
    /// At the login run's connections: throughput.
    pub loaded: Comparison,
    /// One connection: latency on an otherwise idle server.
    pub single: Comparison,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Comparison {
    pub connections: usize,
    /// `POST /login` → 200, the bench user (no second factor).
    pub password_only: Measured,
    /// Both requests of a login with TOTP; `req_per_sec` counts logins.
    pub totp_flow: Measured,
    /// Its first request alone: password → 401 `mfa_required`.
    pub password_step: Measured,
    /// Its second request alone: `/mfa/verify` with the code → 200.
    pub verify_step: Measured,
    /// Times a connection found no user whose code was still unused in
    /// the current step and waited (unmeasured) for the next.
    pub stalls: u64,
    /// Seconds waited before the run for a fresh time step (unmeasured).
    pub waited_seconds: f64,
}

impl Comparison {
    /// p50 of the whole TOTP login minus p50 of a password-only login.
    pub fn added_p50_ms(&self) -> f64 {
        self.totp_flow.p50_ms - self.password_only.p50_ms
    }
}

/// Seeds and enrols the users, then measures both flows at `connections`
/// and at one connection, `seconds` each.
pub fn measure(env: &Env, base: &str, connections: usize, seconds: u64) -> Result<TotpLogin> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .timeout(Duration::from_secs(10))
        .build()
        .context("building the HTTP client")?;
    runtime.block_on(async {
        let mut result = TotpLogin::default();
        // Logins still queued from earlier runs (the overflow) must drain
        // first: one login answered at once means the queue is empty.
        let drained = Instant::now() + Duration::from_secs(60);
        while password_login(&client, base).await.is_none() && Instant::now() < drained {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let password_loaded = load(&client, base, None, connections, seconds).await?;
        print_flow("password-only login", connections, &password_loaded.flow);
        let users = needed_users(&password_loaded.flow, connections, seconds);

        super::banner(&format!(
            "login with TOTP: seeding and enrolling {users} users"
        ));
        let started = Instant::now();
        let url = env.url();
        tokio::task::spawn_blocking(move || seed::seed(&url, users as u64, 0, 0))
            .await
            .context("seeding thread")??;
        let pool = Arc::new(Users::new(enrol(&client, base, users).await?));
        result.users = users;
        result.enrol_seconds = started.elapsed().as_secs_f64();
        println!("enrolled in {:.1} s", result.enrol_seconds);

        let waited = pool.wait_for_free(users).await;
        let totp_loaded = load(&client, base, Some(&pool), connections, seconds).await?;
        result.loaded = comparison(connections, password_loaded, totp_loaded, waited);
        print_comparison(&result.loaded);

        let password_single = load(&client, base, None, 1, seconds).await?;
        print_flow("password-only login", 1, &password_single.flow);
        let needed = needed_users(&password_single.flow, 1, seconds).min(users);
        let waited = pool.wait_for_free(needed).await;
        let totp_single = load(&client, base, Some(&pool), 1, seconds).await?;
        result.single = comparison(1, password_single, totp_single, waited);
        print_comparison(&result.single);
        Ok(result)
    })
}

/// Enough users for one run of `seconds` at the rate of `password_only`
/// (a TOTP login is never faster than its password step).
fn needed_users(password_only: &Measured, connections: usize, seconds: u64) -> usize {
    let window = (seconds as f64 + WARM_UP.as_secs_f64()).min(STEP_SECS as f64);
    (password_only.req_per_sec * window * USER_MARGIN).ceil() as usize + connections
}

fn comparison(connections: usize, password: Outcome, totp: Outcome, waited: f64) -> Comparison {
    Comparison {
        connections,
        password_only: password.flow,
        totp_flow: totp.flow,
        password_step: totp.password_step,
        verify_step: totp.verify_step,
        stalls: totp.stalls,
        waited_seconds: waited,
    }
}

fn print_flow(title: &str, connections: usize, m: &Measured) {
    super::banner(&format!(
        "{title}, built-in client ({connections} connections)"
    ));
    println!(
        "{:.1} logins/s ok, p50 {:.2} ms, p99 {:.2} ms, {} errors",
        m.req_per_sec, m.p50_ms, m.p99_ms, m.errors
    );
}

fn print_comparison(c: &Comparison) {
    super::banner(&format!(
        "login with TOTP: password, then code ({} connections)",
        c.connections
    ));
    if c.waited_seconds > 0.0 {
        println!(
            "(waited {:.1} s for a fresh time step first)",
            c.waited_seconds
        );
    }
    let f = &c.totp_flow;
    println!(
        "{:.1} logins/s ok, p50 {:.2} ms, p99 {:.2} ms, {} errors, {} stalls",
        f.req_per_sec, f.p50_ms, f.p99_ms, f.errors, c.stalls
    );
    println!(
        "password step p50 {:.2} ms, p99 {:.2} ms; /mfa/verify p50 {:.2} ms, p99 {:.2} ms",
        c.password_step.p50_ms, c.password_step.p99_ms, c.verify_step.p50_ms, c.verify_step.p99_ms
    );
    println!(
        "TOTP adds {:.2} ms at p50 ({:.2} vs {:.2} ms); throughput {:.3} of password-only",
        c.added_p50_ms(),
        f.p50_ms,
        c.password_only.p50_ms,
        ratio(f.req_per_sec, c.password_only.req_per_sec)
    );
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

// ---------------------------------------------------------------------------------------------
// Users and their authenticators

struct User {
    login: String,
    app: TOTP,
    /// The last time step whose code was sent for this user.
    last_step: u64,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn step_now() -> u64 {
    unix_now() / STEP_SECS
}

/// Until just after the next time step begins.
fn until_next_step() -> Duration {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let next = Duration::from_secs((now.as_secs() / STEP_SECS + 1) * STEP_SECS);
    next.saturating_sub(now) + Duration::from_millis(20)
}

/// The enrolled users, least recently used first.
struct Users(Mutex<VecDeque<User>>);

impl Users {
    fn new(users: Vec<User>) -> Users {
        Users(Mutex::new(users.into()))
    }

    fn free(&self) -> usize {
        let step = step_now();
        let queue = self.0.lock().unwrap();
        queue.iter().filter(|u| u.last_step < step).count()
    }

    /// Waits for the next time step when fewer than `needed` users are
    /// free in this one; the seconds waited.
    async fn wait_for_free(&self, needed: usize) -> f64 {
        if self.free() >= needed {
            return 0.0;
        }
        let wait = until_next_step();
        println!(
            "\nwaiting {:.1} s for the next TOTP time step (too few users free in this one)",
            wait.as_secs_f64()
        );
        tokio::time::sleep(wait).await;
        wait.as_secs_f64()
    }

    /// A user whose code for the current step is unused, and whether the
    /// caller had to wait for the next step to get one.
    async fn take(&self) -> (User, bool) {
        let mut stalled = false;
        loop {
            {
                let step = step_now();
                let mut queue = self.0.lock().unwrap();
                if let Some(i) = queue.iter().position(|u| u.last_step < step) {
                    return (queue.remove(i).expect("position is in the queue"), stalled);
                }
            }
            stalled = true;
            tokio::time::sleep(until_next_step()).await;
        }
    }

    fn give_back(&self, user: User) {
        self.0.lock().unwrap().push_back(user);
    }
}

/// Logs each seeded user in, enrols TOTP and confirms it (with the previous
/// step's code, so this step's is still unused).
async fn enrol(client: &reqwest::Client, base: &str, count: usize) -> Result<Vec<User>> {
    let mut enrolments = JoinSet::new();
    let mut users = Vec::with_capacity(count);
    for i in 1..=count {
        if enrolments.len() >= ENROL_CONNECTIONS
            && let Some(done) = enrolments.join_next().await
        {
            users.push(done.context("enrolment task")??);
        }
        let (client, base) = (client.clone(), base.to_owned());
        enrolments
            .spawn(async move { enrol_one(&client, &base, &format!("seed{i}@example.com")).await });
    }
    while let Some(done) = enrolments.join_next().await {
        users.push(done.context("enrolment task")??);
    }
    Ok(users)
}

async fn enrol_one(client: &reqwest::Client, base: &str, login: &str) -> Result<User> {
    let (status, session) = post(
        client,
        base,
        "/api/v1/auth/login",
        None,
        &json!({ "login": login, "password": SEEDED_PASSWORD }),
    )
    .await?;
    if status != StatusCode::OK {
        bail!("enrolment login of {login}: HTTP {status}: {session}");
    }
    let access = field(&session, "access_token")?;
    let response = client
        .post(format!("{base}/api/v1/auth/mfa/totp"))
        .bearer_auth(&access)
        .send()
        .await?;
    let status = response.status();
    let enrolment: Value = response.json().await.unwrap_or(Value::Null);
    if status != StatusCode::OK {
        bail!("TOTP enrolment of {login}: HTTP {status}: {enrolment}");
    }
    let secret = Secret::Encoded(field(&enrolment, "secret")?)
        .to_bytes()
        .map_err(|e| anyhow!("the enrolment's secret: {e:?}"))?;
    let app = TOTP::new(Algorithm::SHA1, 6, 1, STEP_SECS, secret)
        .map_err(|e| anyhow!("TOTP parameters: {e}"))?;
    // A step boundary between computing the code and the server's check can
    // put the previous step out of reach: then once more.
    for _ in 0..2 {
        let step = step_now() - 1;
        let code = app.generate(step * STEP_SECS);
        let (status, body) = post(
            client,
            base,
            "/api/v1/auth/mfa/totp/confirm",
            Some(&access),
            &json!({ "code": code }),
        )
        .await?;
        if status == StatusCode::OK {
            return Ok(User {
                login: login.to_owned(),
                app,
                last_step: step,
            });
        }
        if body["code"] != "invalid_code" {
            bail!("confirming TOTP for {login}: HTTP {status}: {body}");
        }
    }
    bail!("confirming TOTP for {login}: the code was refused twice")
}

// ---------------------------------------------------------------------------------------------
// The load

/// What one run saw, in its measured window.
struct Outcome {
    flow: Measured,
    password_step: Measured,
    verify_step: Measured,
    stalls: u64,
}

#[derive(Default)]
struct Samples {
    flows: Vec<Duration>,
    password_steps: Vec<Duration>,
    verify_steps: Vec<Duration>,
    errors: u64,
    stalls: u64,
}

/// `connections` clients logging in for a warm-up plus `seconds`: with the
/// bench user's password alone (`users` = `None`), or with TOTP users.
async fn load(
    client: &reqwest::Client,
    base: &str,
    users: Option<&Arc<Users>>,
    connections: usize,
    seconds: u64,
) -> Result<Outcome> {
    let measure_from = Instant::now() + WARM_UP;
    let window = Duration::from_secs(seconds);
    let measure_until = measure_from + window;
    let mut tasks = JoinSet::new();
    for _ in 0..connections {
        let (client, base, users) = (client.clone(), base.to_owned(), users.cloned());
        tasks.spawn(async move {
            let mut samples = Samples::default();
            while Instant::now() < measure_until {
                let (outcome, stalled) = match &users {
                    None => (password_login(&client, &base).await, false),
                    Some(users) => {
                        let (user, stalled) = users.take().await;
                        let outcome = totp_login(&client, &base, &user).await;
                        users.give_back(user);
                        (outcome, stalled)
                    }
                };
                let done = Instant::now();
                if done < measure_from || done > measure_until {
                    continue;
                }
                samples.stalls += u64::from(stalled);
                match outcome {
                    Some((flow, steps)) => {
                        samples.flows.push(flow);
                        if let Some((password, verify)) = steps {
                            samples.password_steps.push(password);
                            samples.verify_steps.push(verify);
                        }
                    }
                    None => samples.errors += 1,
                }
            }
            samples
        });
    }
    let mut all = Samples::default();
    while let Some(joined) = tasks.join_next().await {
        let samples = joined.context("load task panicked")?;
        all.flows.extend(samples.flows);
        all.password_steps.extend(samples.password_steps);
        all.verify_steps.extend(samples.verify_steps);
        all.errors += samples.errors;
        all.stalls += samples.stalls;
    }
    let flow = super::load::summarize(all.flows, all.errors, window);
    if flow.req_per_sec == 0.0 {
        bail!("login load: no login succeeded ({} errors)", all.errors);
    }
    Ok(Outcome {
        flow,
        password_step: super::load::summarize(all.password_steps, 0, window),
        verify_step: super::load::summarize(all.verify_steps, 0, window),
        stalls: all.stalls,
    })
}

type Timed = Option<(Duration, Option<(Duration, Duration)>)>;

async fn password_login(client: &reqwest::Client, base: &str) -> Timed {
    let start = Instant::now();
    let body = json!({ "login": EMAIL, "password": PASSWORD });
    let (status, _) = post(client, base, "/api/v1/auth/login", None, &body)
        .await
        .ok()?;
    (status == StatusCode::OK).then(|| (start.elapsed(), None))
}

/// Password, then the current step's code: the whole time and each step's.
async fn totp_login(client: &reqwest::Client, base: &str, user: &User) -> Timed {
    let start = Instant::now();
    let body = json!({ "login": user.login, "password": SEEDED_PASSWORD });
    let (status, challenge) = post(client, base, "/api/v1/auth/login", None, &body)
        .await
        .ok()?;
    if status != StatusCode::UNAUTHORIZED || challenge["code"] != "mfa_required" {
        return None;
    }
    let password_done = Instant::now();
    let code = user.app.generate(unix_now());
    let body = json!({ "mfa_token": challenge["mfa_token"], "method": "totp", "code": code });
    let result = post(client, base, "/api/v1/auth/mfa/verify", None, &body).await;
    let done = Instant::now();
    // Taken whether or not it was accepted (it may have been, unanswered).
    let (status, tokens) = result.ok()?;
    if status != StatusCode::OK || !tokens["access_token"].is_string() {
        return None;
    }
    Some((
        done - start,
        Some((password_done - start, done - password_done)),
    ))
}

async fn post(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    bearer: Option<&str>,
    body: &Value,
) -> Result<(StatusCode, Value)> {
    let mut request = client.post(format!("{base}{path}")).json(body);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let response = request.send().await?;
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    Ok((status, body))
}

fn field(body: &Value, name: &str) -> Result<String> {
    body[name]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("the answer has no {name}: {body}"))
}

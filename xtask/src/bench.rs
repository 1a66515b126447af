//! `cargo xtask bench`: builds the release server, runs it against a throw-away SQLite database
//! and measures a few endpoints with a small tokio + reqwest load generator.
//!
//! This is a benchmark, never a test: it fails only when the server cannot be started or an
//! endpoint answers no request successfully. The targets it prints are informational.

use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::{cargo, run_checked, target_dir, workspace_root};

const EMAIL: &str = "bench@example.com";
const PASSWORD: &str = "correct horse battery staple 42";
const WARM_UP: Duration = Duration::from_millis(500);
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Each login costs one Argon2 hash on the server, so more concurrency only queues.
const MAX_LOGIN_CONCURRENCY: usize = 8;
const ARGON2_RUNS: usize = 20;

const TARGET_ME_OVER_HEALTHZ: f64 = 0.8;
const TARGET_LOGIN_EFFICIENCY: f64 = 0.9;

pub struct Options {
    /// Measuring time per endpoint (after a short warm-up).
    pub seconds: u64,
    /// Number of concurrent client tasks.
    pub concurrency: usize,
    /// Where to write the JSON report; `None` means `<target dir>/bench/bench.json`.
    pub out: Option<PathBuf>,
}

pub fn run(options: Options) -> Result<()> {
    let root = workspace_root();
    let target = target_dir(&root);
    let out_path = match &options.out {
        Some(path) if path.is_absolute() => path.clone(),
        Some(path) => std::env::current_dir()?.join(path),
        None => target.join("bench").join("bench.json"),
    };

    banner("cargo build --release -p auth-server");
    let mut build = Command::new(cargo());
    build
        .current_dir(&root)
        .args(["build", "--release", "-p", "auth-server"]);
    if std::env::var_os("CARGO_TARGET_DIR").is_some() {
        // Pass it on made absolute, since we changed the working directory.
        build.env("CARGO_TARGET_DIR", &target);
    }
    run_checked("building auth-server", &mut build)?;
    let binary = target.join("release").join("auth-server");

    banner("in-process Argon2id cost (m=19456 KiB, t=2, p=1)");
    let argon2_ms = argon2_median_ms()?;
    println!("median of {ARGON2_RUNS} hashes: {argon2_ms:.1} ms");

    banner("starting the server");
    let tmp = TempDir::create()?;
    let server = start_server(&binary, &tmp.0)?;
    println!(
        "server at {} (data in {})",
        server.base_url,
        tmp.0.display()
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    let endpoints = runtime.block_on(measure_endpoints(&server.base_url, &options))?;
    drop(runtime);
    drop(server);

    let report = Report::new(&options, endpoints, argon2_ms);
    report.print();

    if let Some(dir) = out_path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let json = serde_json::to_string_pretty(&report)?;
    std::fs::write(&out_path, json + "\n")
        .with_context(|| format!("writing {}", out_path.display()))?;
    println!("\nwrote {}", out_path.display());
    Ok(())
}

fn banner(title: &str) {
    println!("\n==> [bench] {title}");
    let _ = std::io::stdout().flush();
}

// ---------------------------------------------------------------------------------------------
// Argon2

fn argon2_median_ms() -> Result<f64> {
    use argon2::{Algorithm, Argon2, Params, Version};

    let params = Params::new(19_456, 2, 1, Some(32)).map_err(|e| anyhow!("argon2 params: {e}"))?;
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let salt = [0x5a_u8; 16];
    let mut output = [0_u8; 32];

    let mut hash = || {
        argon2
            .hash_password_into(PASSWORD.as_bytes(), &salt, &mut output)
            .map_err(|e| anyhow!("argon2: {e}"))
    };
    hash()?; // warm-up: first allocation, page faults
    let mut times = Vec::with_capacity(ARGON2_RUNS);
    for _ in 0..ARGON2_RUNS {
        let start = Instant::now();
        hash()?;
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

// ---------------------------------------------------------------------------------------------
// Server process

/// A scratch directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn create() -> Result<Self> {
        let path = std::env::temp_dir().join(format!("auth-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The running `auth-server serve`, killed on drop.
struct Server {
    child: Child,
    base_url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn server_command(binary: &Path, dir: &Path) -> Command {
    let mut command = Command::new(binary);
    command
        .env("AUTH_BIND", "127.0.0.1:0")
        .env("AUTH_DATABASE_URL", dir.join("auth.db"))
        .env("AUTH_KEYS_DIR", dir.join("keys"))
        .env("AUTH_MAIL_DIR", dir.join("mail"))
        .env("RUST_LOG", "warn");
    command
}

fn start_server(binary: &Path, dir: &Path) -> Result<Server> {
    if !binary.is_file() {
        bail!("server binary not found at {}", binary.display());
    }

    run_checked(
        "auth-server migrate",
        server_command(binary, dir)
            .arg("migrate")
            .stdin(Stdio::null()),
    )?;

    let mut add_user = server_command(binary, dir)
        .args([
            "user",
            "add",
            "--email",
            EMAIL,
            "--username",
            "bench",
            "--name",
            "Bench",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .context("starting `auth-server user add`")?;
    {
        // The server reads the password from stdin when it is not a terminal.
        let mut stdin = add_user.stdin.take().context("user add: no stdin")?;
        writeln!(stdin, "{PASSWORD}").context("writing the password to `auth-server user add`")?;
    } // closes stdin
    let status = add_user
        .wait()
        .context("waiting for `auth-server user add`")?;
    if !status.success() {
        bail!("auth-server user add failed ({status})");
    }

    let child = server_command(binary, dir)
        .arg("serve")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting `auth-server serve`")?;
    let mut server = Server {
        child,
        base_url: String::new(),
    };

    // Read stdout on a thread (so we can time out), and keep draining it afterwards.
    let stdout = server.child.stdout.take().context("serve: no stdout")?;
    let (lines_tx, lines_rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line.clone()).is_err() {
                println!("[auth-server] {line}");
            }
        }
    });

    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match lines_rx.recv_timeout(remaining) {
            Ok(line) => {
                if let Some(url) = line.trim().strip_prefix("listening on ") {
                    server.base_url = url.trim_end_matches('/').to_string();
                    return Ok(server);
                }
                println!("[auth-server] {line}");
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                bail!(
                    "auth-server serve did not print `listening on ...` within {STARTUP_TIMEOUT:?}"
                )
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = server.child.wait().ok();
                bail!("auth-server serve exited before listening (status: {status:?})")
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Load generation

#[derive(Serialize)]
struct EndpointResult {
    endpoint: String,
    concurrency: usize,
    /// Requests completed inside the measuring window (successes + errors).
    requests: u64,
    /// Successful (2xx) responses per second.
    req_per_sec: f64,
    /// Latency percentiles of the successful requests.
    p50_ms: f64,
    p99_ms: f64,
    /// Non-2xx responses and transport errors.
    errors: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

async fn measure_endpoints(base: &str, options: &Options) -> Result<Vec<EndpointResult>> {
    let concurrency = options.concurrency;
    let seconds = options.seconds;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(30))
        .build()
        .context("building the HTTP client")?;
    let api = Api {
        client: client.clone(),
        base: base.to_string(),
    };

    let first = api
        .login()
        .await
        .context("could not log in as the bench user")?;
    let access_token = first["access_token"]
        .as_str()
        .context("login response has no access_token")?
        .to_string();

    let mut results = Vec::new();

    banner("GET /healthz");
    let url = format!("{base}/healthz");
    let task_client = client.clone();
    results.push(
        load(
            "GET /healthz",
            concurrency,
            seconds,
            vec![(); concurrency],
            move |()| {
                let request = task_client.get(&url);
                async move { (send_ok(request).await, ()) }
            },
        )
        .await?,
    );

    banner("GET /api/v1/auth/me");
    let url = format!("{base}/api/v1/auth/me");
    let task_client = client.clone();
    results.push(
        load(
            "GET /api/v1/auth/me",
            concurrency,
            seconds,
            vec![(); concurrency],
            move |()| {
                let request = task_client.get(&url).bearer_auth(&access_token);
                async move { (send_ok(request).await, ()) }
            },
        )
        .await?,
    );

    banner("POST /api/v1/auth/refresh");
    println!("logging in {concurrency} sessions (one per task)...");
    let mut refresh_tokens = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        refresh_tokens.push(api.login_refresh_token().await?);
    }
    let task_api = api.clone();
    results.push(
        load(
            "POST /api/v1/auth/refresh",
            concurrency,
            seconds,
            refresh_tokens,
            move |token| {
                let api = task_api.clone();
                async move { api.refresh(token).await }
            },
        )
        .await?,
    );

    let login_concurrency = concurrency.min(MAX_LOGIN_CONCURRENCY);
    banner(&format!(
        "POST /api/v1/auth/login (concurrency {login_concurrency})"
    ));
    let task_api = api.clone();
    let mut login = load(
        "POST /api/v1/auth/login",
        login_concurrency,
        seconds,
        vec![(); login_concurrency],
        move |()| {
            let api = task_api.clone();
            async move { (api.login().await.is_ok(), ()) }
        },
    )
    .await?;
    login.note = Some(format!(
        "concurrency min({concurrency}, {MAX_LOGIN_CONCURRENCY}) = {login_concurrency}: each login is an Argon2 hash"
    ));
    results.push(login);

    Ok(results)
}

/// Runs one task per entry of `states` for a warm-up plus `seconds`, each task calling `step`
/// in a loop. `step` returns whether the request succeeded and the task's next state.
async fn load<S, F, Fut>(
    name: &str,
    concurrency: usize,
    seconds: u64,
    states: Vec<S>,
    step: F,
) -> Result<EndpointResult>
where
    S: Send + 'static,
    F: Fn(S) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = (bool, S)> + Send,
{
    let step = Arc::new(step);
    let measure_from = Instant::now() + WARM_UP;
    let window = Duration::from_secs(seconds);
    let measure_until = measure_from + window;

    let mut tasks = JoinSet::new();
    for state in states {
        let step = Arc::clone(&step);
        tasks.spawn(async move {
            let mut state = state;
            let mut latencies = Vec::new();
            let mut errors = 0_u64;
            loop {
                let start = Instant::now();
                if start >= measure_until {
                    break;
                }
                let (ok, next) = step(state).await;
                state = next;
                let done = Instant::now();
                // Count what completes inside the window: steady-state throughput.
                if done >= measure_from && done <= measure_until {
                    if ok {
                        latencies.push(done - start);
                    } else {
                        errors += 1;
                    }
                }
            }
            (latencies, errors)
        });
    }

    let mut latencies = Vec::new();
    let mut errors = 0;
    while let Some(joined) = tasks.join_next().await {
        let (task_latencies, task_errors) = joined.context("load task panicked")?;
        latencies.extend(task_latencies);
        errors += task_errors;
    }
    latencies.sort_unstable();

    let ok = latencies.len() as u64;
    println!("{ok} ok, {errors} errors");
    if ok == 0 {
        bail!("{name}: no request succeeded ({errors} errors)");
    }
    Ok(EndpointResult {
        endpoint: name.to_string(),
        concurrency,
        requests: ok + errors,
        req_per_sec: ok as f64 / window.as_secs_f64(),
        p50_ms: percentile_ms(&latencies, 0.50),
        p99_ms: percentile_ms(&latencies, 0.99),
        errors,
        note: None,
    })
}

/// Nearest-rank percentile of sorted latencies, in milliseconds.
fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1000.0
}

/// Sends a request and reads the whole body (so the connection goes back to the pool).
async fn send_ok(request: reqwest::RequestBuilder) -> bool {
    match request.send().await {
        Ok(response) => {
            let ok = response.status().is_success();
            ok && response.bytes().await.is_ok()
        }
        Err(_) => false,
    }
}

/// Sends a request expecting a 2xx JSON body.
async fn send_json(request: reqwest::RequestBuilder) -> Result<Value> {
    let response = request.send().await?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        bail!("HTTP {status}: {body}");
    }
    Ok(response.json().await?)
}

#[derive(Clone)]
struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    async fn login(&self) -> Result<Value> {
        let request = self
            .client
            .post(format!("{}/api/v1/auth/login", self.base))
            .json(&json!({ "login": EMAIL, "password": PASSWORD }));
        send_json(request).await
    }

    async fn login_refresh_token(&self) -> Result<String> {
        let body = self.login().await.context("logging in")?;
        body["refresh_token"]
            .as_str()
            .map(str::to_string)
            .context("login response has no refresh_token")
    }

    /// One refresh step: returns success and the token to use next. On failure the chain
    /// is broken (the old token may be spent), so start a new session.
    async fn refresh(&self, token: String) -> (bool, String) {
        let request = self
            .client
            .post(format!("{}/api/v1/auth/refresh", self.base))
            .json(&json!({ "refresh_token": token }));
        let next = send_json(request)
            .await
            .ok()
            .and_then(|body| body["refresh_token"].as_str().map(str::to_string));
        match next {
            Some(next) => (true, next),
            None => match self.login_refresh_token().await {
                Ok(fresh) => (false, fresh),
                Err(_) => (false, token),
            },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Report

#[derive(Serialize)]
struct Ratio {
    value: f64,
    target: f64,
    met: bool,
    formula: &'static str,
}

impl Ratio {
    fn new(value: f64, target: f64, formula: &'static str) -> Self {
        Self {
            value,
            target,
            met: value >= target,
            formula,
        }
    }
}

#[derive(Serialize)]
struct Ratios {
    me_over_healthz: Ratio,
    login_efficiency: Ratio,
}

#[derive(Serialize)]
struct Report {
    unix_time: u64,
    seconds: u64,
    concurrency: usize,
    cores: usize,
    argon2_median_ms: f64,
    endpoints: Vec<EndpointResult>,
    ratios: Ratios,
}

impl Report {
    fn new(options: &Options, endpoints: Vec<EndpointResult>, argon2_median_ms: f64) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let rate = |prefix: &str| {
            endpoints
                .iter()
                .find(|e| e.endpoint.contains(prefix))
                .map_or(0.0, |e| e.req_per_sec)
        };
        let me_over_healthz = rate("/me") / rate("/healthz");
        let max_logins_per_sec = cores as f64 / (argon2_median_ms / 1000.0);
        let login_efficiency = rate("/login") / max_logins_per_sec;
        Self {
            unix_time: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            seconds: options.seconds,
            concurrency: options.concurrency,
            cores,
            argon2_median_ms,
            endpoints,
            ratios: Ratios {
                me_over_healthz: Ratio::new(
                    me_over_healthz,
                    TARGET_ME_OVER_HEALTHZ,
                    "req/s(/me) / req/s(/healthz)",
                ),
                login_efficiency: Ratio::new(
                    login_efficiency,
                    TARGET_LOGIN_EFFICIENCY,
                    "req/s(/login) / (cores / argon2_seconds)",
                ),
            },
        }
    }

    fn print(&self) {
        banner(&format!(
            "results ({} s per endpoint, concurrency {})",
            self.seconds, self.concurrency
        ));
        println!(
            "{:<28} | {:>9} | {:>9} | {:>8} | {:>8} | {:>6}",
            "endpoint", "requests", "req/s", "p50 ms", "p99 ms", "errors"
        );
        println!("{}", "-".repeat(84));
        for e in &self.endpoints {
            println!(
                "{:<28} | {:>9} | {:>9.1} | {:>8.2} | {:>8.2} | {:>6}",
                e.endpoint, e.requests, e.req_per_sec, e.p50_ms, e.p99_ms, e.errors
            );
        }
        for e in &self.endpoints {
            if let Some(note) = &e.note {
                println!("note: {}: {note}", e.endpoint);
            }
        }
        println!();
        println!("argon2 median: {:.1} ms per hash", self.argon2_median_ms);
        println!("cores:         {}", self.cores);
        for (name, ratio) in [
            ("me_over_healthz", &self.ratios.me_over_healthz),
            ("login_efficiency", &self.ratios.login_efficiency),
        ] {
            println!(
                "{name:<17} = {:.3}  (target >= {}: {})  [{}]",
                ratio.value,
                ratio.target,
                if ratio.met { "met" } else { "NOT met" },
                ratio.formula
            );
        }
        println!("(targets are informational; the benchmark never fails on timing)");
    }
}

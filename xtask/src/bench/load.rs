//! Load generation: `wrk` (Debian package `wrk`, installed when missing) with
//! small Lua scripts, or, when it can't be installed, a built-in tokio +
//! reqwest client. The built-in client
//! is a debug build and much slower than the server, so its figures are
//! client-bound; the report says which one ran.

use std::future::Future;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::task::JoinSet;

/// What one load run sends.
#[derive(Clone)]
pub enum Workload {
    /// `GET path`, nothing else.
    Get,
    /// `GET path` with one bearer token on every request.
    GetBearer(String),
    /// `GET path` with the next token of a list on each request (every token
    /// new to the server as long as the list is longer than its cache).
    GetBearerEach(Vec<String>),
    /// `POST path` with a login body.
    Login { login: String, password: String },
    /// `POST path` with `{"refresh_token": …}`, each connection carrying on
    /// with the token from the previous answer. Start with ≥ 1 per connection.
    RefreshChains(Vec<String>),
}

#[derive(Clone)]
pub struct Spec {
    pub path: String,
    pub workload: Workload,
    pub connections: usize,
    pub seconds: u64,
    /// Pause after each answer, per connection (a paced latency probe).
    pub delay_ms: Option<u64>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Measured {
    /// Answers received in the measured time.
    pub requests: u64,
    /// 2xx answers per second.
    pub req_per_sec: f64,
    /// Non-2xx answers and transport errors.
    pub errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Generator {
    Wrk,
    Builtin,
}

impl Generator {
    /// wrk when it runs, else the built-in client (with a clear note why).
    pub fn detect(force_builtin: bool) -> Generator {
        if force_builtin {
            println!("load generator: built-in client (asked for with --builtin-client)");
            return Generator::Builtin;
        }
        if let Err(e) = crate::provision::load_generator() {
            println!("{e:#}");
        }
        match Command::new("wrk").arg("-v").output() {
            Ok(out) if String::from_utf8_lossy(&out.stdout).starts_with("wrk ") => {
                let version = String::from_utf8_lossy(&out.stdout);
                let version = version.split_whitespace().nth(1).unwrap_or("?");
                println!("load generator: wrk {version}");
                Generator::Wrk
            }
            _ => {
                println!(
                    "load generator: wrk NOT FOUND and could not be installed (above). \
                     Install it for meaningful figures. Falling back to the built-in \
                     reqwest client: it is a debug build and slower than the server, so \
                     throughput figures below are client-bound, not server limits."
                );
                Generator::Builtin
            }
        }
    }

    pub fn run(self, base: &str, spec: &Spec, scratch: &Path) -> Result<Measured> {
        match self {
            Generator::Wrk => wrk(base, spec, scratch),
            Generator::Builtin => {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()
                    .context("building the tokio runtime")?;
                runtime.block_on(builtin(base, spec))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// wrk

/// Shared by every script: per-thread ids, reading a token file (each thread
/// takes every n-th line), and a machine-readable summary at the end.
const LUA_COMMON: &str = r#"
local threads_made = 0
function setup(thread)
  thread:set("id", threads_made)
  threads_made = threads_made + 1
end

function read_share(path, n)
  local mine, k = {}, 0
  for line in io.lines(path) do
    if line ~= "" then
      if k % n == id then mine[#mine + 1] = line end
      k = k + 1
    end
  end
  return mine
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"status_errors":%d,"socket_errors":%d,"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50.0), latency:percentile(99.0), latency.max))
end
"#;

const LUA_BEARER_ONE: &str = r#"
function init(args)
  local token = io.open(args[1]):read("*l")
  wrk.headers["Authorization"] = "Bearer " .. token
end
"#;

const LUA_BEARER_EACH: &str = r#"
local requests, i = {}, 0
function init(args)
  for _, token in ipairs(read_share(args[1], tonumber(args[2]))) do
    requests[#requests + 1] = wrk.format("GET", nil, { ["Authorization"] = "Bearer " .. token })
  end
end
function request()
  i = i + 1
  if i > #requests then i = 1 end
  return requests[i]
end
"#;

const LUA_LOGIN: &str = r#"
function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.body = io.open(args[1]):read("*a")
end
"#;

/// Each answer's new refresh token goes back on the thread's stack; a
/// request takes one. With at least one token per connection the stack never
/// runs dry while answers are 200 (a failed answer loses its chain; the
/// last token is then re-sent, which the server's reuse grace accepts).
const LUA_REFRESH: &str = r#"
local stack, last = {}, nil
function init(args)
  stack = read_share(args[1], tonumber(args[2]))
end
function request()
  local token = table.remove(stack) or last
  last = token
  return wrk.format("POST", nil, { ["Content-Type"] = "application/json" },
    '{"refresh_token":"' .. token .. '"}')
end
function response(status, headers, body)
  local token = body:match('"refresh_token":"([^"]+)"')
  if token then stack[#stack + 1] = token end
end
"#;

fn lua_delay(ms: u64) -> String {
    format!("\nfunction delay() return {ms} end\n")
}

fn wrk(base: &str, spec: &Spec, scratch: &Path) -> Result<Measured> {
    let threads = spec.connections.clamp(1, 2);
    let mut script = String::from(LUA_COMMON);
    let mut args: Vec<String> = Vec::new();
    let data = scratch.join(format!("wrk-{}.data", std::process::id()));
    match &spec.workload {
        Workload::Get => {}
        Workload::GetBearer(token) => {
            write_secret_file(&data, token)?;
            script.push_str(LUA_BEARER_ONE);
            args.push(data.display().to_string());
        }
        Workload::GetBearerEach(tokens) => {
            write_secret_file(&data, &tokens.join("\n"))?;
            script.push_str(LUA_BEARER_EACH);
            args.extend([data.display().to_string(), threads.to_string()]);
        }
        Workload::Login { login, password } => {
            let body = json!({ "login": login, "password": password }).to_string();
            write_secret_file(&data, &body)?;
            script.push_str(LUA_LOGIN);
            args.push(data.display().to_string());
        }
        Workload::RefreshChains(tokens) => {
            if tokens.len() < spec.connections {
                bail!("refresh load needs one token per connection");
            }
            write_secret_file(&data, &tokens.join("\n"))?;
            script.push_str(LUA_REFRESH);
            args.extend([data.display().to_string(), threads.to_string()]);
        }
    }
    if let Some(ms) = spec.delay_ms {
        script.push_str(&lua_delay(ms));
    }
    let script_path = scratch.join(format!("wrk-{}.lua", std::process::id()));
    std::fs::write(&script_path, script)
        .with_context(|| format!("writing {}", script_path.display()))?;

    let url = format!("{base}{}", spec.path);
    let output = Command::new("wrk")
        .arg(format!("-t{threads}"))
        .arg(format!("-c{}", spec.connections))
        .arg(format!("-d{}s", spec.seconds))
        .arg("--timeout=10s")
        .arg("-s")
        .arg(&script_path)
        .arg(&url)
        .arg("--")
        .args(&args)
        .output()
        .context("running wrk")?;
    let _ = std::fs::remove_file(&data);
    let _ = std::fs::remove_file(&script_path);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("BENCH_JSON "))
        .ok_or_else(|| {
            anyhow!(
                "wrk printed no summary ({}):\n{stdout}\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            )
        })?;
    let v: Value = serde_json::from_str(line).context("wrk summary")?;
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    let seconds = n("duration_us") as f64 / 1e6;
    let errors = n("status_errors") + n("socket_errors");
    let ok = n("requests").saturating_sub(n("status_errors"));
    Ok(Measured {
        requests: n("requests"),
        req_per_sec: if seconds > 0.0 {
            ok as f64 / seconds
        } else {
            0.0
        },
        errors,
        p50_ms: n("p50_us") as f64 / 1000.0,
        p99_ms: n("p99_us") as f64 / 1000.0,
        max_ms: n("max_us") as f64 / 1000.0,
    })
}

/// Token files hold live bearer tokens (of a throw-away bench server):
/// owner-only, removed right after the run.
fn write_secret_file(path: &Path, contents: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Built-in client

const WARM_UP: Duration = Duration::from_millis(300);

async fn builtin(base: &str, spec: &Spec) -> Result<Measured> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(spec.connections)
        .timeout(Duration::from_secs(10))
        .build()
        .context("building the HTTP client")?;
    let url = format!("{base}{}", spec.path);
    let delay = spec.delay_ms.map(Duration::from_millis);
    let connections = spec.connections;
    match spec.workload.clone() {
        Workload::Get => {
            drive(spec, vec![(); connections], delay, move |()| {
                let request = client.get(&url);
                async move { (send_ok(request).await.is_some(), ()) }
            })
            .await
        }
        Workload::GetBearer(token) => {
            drive(spec, vec![(); connections], delay, move |()| {
                let request = client.get(&url).bearer_auth(&token);
                async move { (send_ok(request).await.is_some(), ()) }
            })
            .await
        }
        Workload::GetBearerEach(tokens) => {
            let tokens = Arc::new(tokens);
            let states: Vec<usize> = (0..connections).collect();
            drive(spec, states, delay, move |i| {
                let request = client.get(&url).bearer_auth(&tokens[i % tokens.len()]);
                async move { (send_ok(request).await.is_some(), i + connections) }
            })
            .await
        }
        Workload::Login { login, password } => {
            let body = json!({ "login": login, "password": password });
            drive(spec, vec![(); connections], delay, move |()| {
                let request = client.post(&url).json(&body);
                async move { (send_ok(request).await.is_some(), ()) }
            })
            .await
        }
        Workload::RefreshChains(tokens) => {
            let states: Vec<String> = tokens.into_iter().take(connections).collect();
            drive(spec, states, delay, move |token| {
                let request = client.post(&url).json(&json!({ "refresh_token": token }));
                async move {
                    let next = send_ok(request).await.and_then(|body| {
                        serde_json::from_slice::<Value>(&body).ok()?["refresh_token"]
                            .as_str()
                            .map(str::to_owned)
                    });
                    match next {
                        Some(next) => (true, next),
                        None => (false, token),
                    }
                }
            })
            .await
        }
    }
}

/// Runs one task per state for a warm-up plus the measured seconds.
async fn drive<S, F, Fut>(
    spec: &Spec,
    states: Vec<S>,
    delay: Option<Duration>,
    step: F,
) -> Result<Measured>
where
    S: Send + 'static,
    F: Fn(S) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = (bool, S)> + Send,
{
    let step = Arc::new(step);
    let measure_from = Instant::now() + WARM_UP;
    let window = Duration::from_secs(spec.seconds);
    let measure_until = measure_from + window;
    let mut tasks = JoinSet::new();
    for state in states {
        let step = Arc::clone(&step);
        tasks.spawn(async move {
            let mut state = state;
            let (mut latencies, mut errors) = (Vec::new(), 0_u64);
            while Instant::now() < measure_until {
                let start = Instant::now();
                let (ok, next) = step(state).await;
                state = next;
                let done = Instant::now();
                if done >= measure_from && done <= measure_until {
                    if ok {
                        latencies.push(done - start);
                    } else {
                        errors += 1;
                    }
                }
                if let Some(delay) = delay {
                    tokio::time::sleep(delay).await;
                }
            }
            (latencies, errors)
        });
    }
    let (mut latencies, mut errors) = (Vec::new(), 0);
    while let Some(joined) = tasks.join_next().await {
        let (l, e) = joined.context("load task panicked")?;
        latencies.extend(l);
        errors += e;
    }
    Ok(summarize(latencies, errors, window))
}

/// Rate and percentiles of the answers measured in `window`.
pub(super) fn summarize(mut latencies: Vec<Duration>, errors: u64, window: Duration) -> Measured {
    latencies.sort_unstable();
    let ok = latencies.len() as u64;
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let rank = (p * latencies.len() as f64).ceil() as usize;
        latencies[rank.clamp(1, latencies.len()) - 1].as_secs_f64() * 1000.0
    };
    Measured {
        requests: ok + errors,
        req_per_sec: ok as f64 / window.as_secs_f64(),
        errors,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        max_ms: pct(1.0),
    }
}

/// The body of a 2xx answer, or `None`.
async fn send_ok(request: reqwest::RequestBuilder) -> Option<Vec<u8>> {
    let response = request.send().await.ok()?;
    if !response.status().is_success() {
        let _ = response.bytes().await;
        return None;
    }
    response.bytes().await.ok().map(|b| b.to_vec())
}

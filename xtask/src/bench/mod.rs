//! `cargo xtask bench`: builds the release server, runs it on throw-away
//! databases (SQLite, and PostgreSQL when reachable) and measures it with
//! wrk (or a built-in client), then prints every figure of the performance
//! budget with its target and whether it is met, and writes
//! `<target>/bench/latest.json` and `latest.md`.
//!
//! This is a benchmark, never a test: it fails only when the server cannot
//! be started or an endpoint answers nothing successfully. Targets are
//! reported, not enforced.

mod ceiling;
mod enumeration;
mod load;
mod mfa;
mod report;
mod seed;
mod server;
mod tokens;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;
use serde_json::Value;
use storage::Backend;

use crate::{cargo, run_checked, target_dir, workspace_root};
use load::{Generator, Measured, Spec, Workload};
use report::Report;
use server::{EMAIL, Env, PASSWORD, Server};

pub struct Options {
    /// Measuring time per load run.
    pub seconds: u64,
    /// Connections of the throughput runs.
    pub concurrency: usize,
    /// JSON report; `None` means `<target dir>/bench/latest.json`.
    pub out: Option<PathBuf>,
    /// Also run with this many seeded users (and a tenth as many revoked sessions).
    pub seed_users: u64,
    /// Skip PostgreSQL even when it is reachable.
    pub no_postgres: bool,
    /// Use the built-in client even when wrk is installed.
    pub builtin_client: bool,
    /// Also price the middleware on /healthz (the bare handler
    /// behind the server's middleware).
    pub layers: bool,
}

const ARGON2_RUNS: usize = 20;
/// Login connections for the throughput run: a few per hashing thread keep
/// every thread busy without overflowing the queue.
const LOGIN_CONNECTIONS: usize = 8;
/// Login connections of the flood (as many as the issue's `wrk -c32`): on 2
/// cores that fills both hashing threads and almost all of the queue (2 + 32
/// places), so every hashing thread is busy the whole time, and what is
/// measured is whether Argon2 starves the request workers.
const FLOOD_CONNECTIONS: usize = 32;
/// Connections of the short overflow run: far beyond threads + queue, so
/// logins must be refused with 503 + Retry-After.
const OVERFLOW_CONNECTIONS: usize = 128;
const OVERFLOW_SECONDS: u64 = 2;
/// The paced /me probe during the flood: connections and pause between requests.
const PROBE_CONNECTIONS: usize = 4;
const PROBE_DELAY_MS: u64 = 2;
/// Distinct tokens for the cold /me run: 4× the server's cache, so a token
/// comes round again only long after it was evicted.
const TOKEN_CACHE_SIZE: usize = 10_000;
const COLD_TOKENS: usize = 4 * TOKEN_CACHE_SIZE;
const STARTUP_RUNS: usize = 3;
/// Rounds of /healthz and /me against the bare handler (see
/// `Bench::against_the_floor`).
const FLOOR_ROUNDS: usize = 3;
/// access_ttl + leeway of the bench server (defaults): revocations stay relevant that long.
const REVOCATION_TTL_SECS: i64 = 1800 + 30;

pub fn run(options: Options) -> Result<()> {
    let root = workspace_root();
    let target = target_dir(&root);
    let json_path = match &options.out {
        Some(path) if path.is_absolute() => path.clone(),
        Some(path) => std::env::current_dir()?.join(path),
        None => target.join("bench").join("latest.json"),
    };
    let md_path = json_path.with_extension("md");

    // BENCH_SERVER_BINARY measures another build (e.g. an older commit's) instead.
    let binary = match std::env::var_os("BENCH_SERVER_BINARY") {
        Some(binary) => {
            println!("\nserver binary from BENCH_SERVER_BINARY: {binary:?} (not built)");
            PathBuf::from(binary)
        }
        None => {
            banner("cargo build --release -p auth-server");
            let mut build = Command::new(cargo());
            build
                .current_dir(&root)
                .args(["build", "--release", "-p", "auth-server"]);
            if std::env::var_os("CARGO_TARGET_DIR").is_some() {
                build.env("CARGO_TARGET_DIR", &target);
            }
            // `cargo run` gave us xtask's CARGO_PKG_* and friends. Build scripts
            // that read such variables (ring reads CARGO_PKG_NAME) would see
            // them change between this build and a plain `cargo build`, and
            // every switch between the two would rebuild ring and all above it.
            for (name, _) in std::env::vars_os() {
                let name = name.to_string_lossy();
                if [
                    "CARGO_PKG_",
                    "CARGO_MANIFEST_",
                    "CARGO_BIN_",
                    "CARGO_CRATE_",
                ]
                .iter()
                .any(|prefix| name.starts_with(prefix))
                    || name == "CARGO_PRIMARY_PACKAGE"
                {
                    build.env_remove(name.as_ref());
                }
            }
            run_checked("building auth-server", &mut build)?;
            target.join("release").join("auth-server")
        }
    };
    // The bare actix-web handler: built with the server (a binary of the same package).
    let floor = binary.with_file_name("bench_floor");

    banner("machine and load generator");
    let machine = Machine::describe();
    println!(
        "{} cores, {}; other compilers running now: {}",
        machine.cores, machine.cpu_model, machine.compilers_at_start
    );
    let generator = Generator::detect(options.builtin_client);
    let mut report = Report::new(&options, machine, generator);

    banner("Argon2id cost in this process (m=19456 KiB, t=2, p=1, reused buffer)");
    let argon2_ms = argon2_median_ms()?;
    println!("median of {ARGON2_RUNS} hashes: {argon2_ms:.1} ms");
    report.argon2_median_ms = argon2_ms;
    let parallel = argon2_parallel_per_sec(report.machine.cores)?;
    println!(
        "with {} threads hashing at once: {parallel:.1} hashes/s ({:.0} % of {} ÷ one hash)",
        report.machine.cores,
        100.0 * parallel * argon2_ms / 1000.0 / report.machine.cores as f64,
        report.machine.cores
    );
    report.argon2_parallel_per_sec = parallel;

    let bench = Bench {
        binary,
        floor,
        layers: options.layers,
        generator,
        seconds: options.seconds,
        concurrency: options.concurrency,
        scratch: std::env::temp_dir(),
    };
    let started = Instant::now();

    let sqlite = bench.sqlite_run("sqlite", &[])?;
    report.add_run(sqlite.clone());

    let postgres = if options.no_postgres {
        println!("\nPostgreSQL: skipped (--no-postgres)");
        None
    } else if let Some(problem) = postgres_unreachable() {
        println!("\nPostgreSQL: skipped: {problem}");
        report
            .notes
            .push(format!("PostgreSQL not measured: {problem}"));
        None
    } else {
        let run = bench.postgres_run("postgres", 0)?;
        report.add_run(run.clone());
        Some(run)
    };

    if options.seed_users > 0 {
        let revoked = options.seed_users / 10;
        let seeded = bench.seeded_run(Backend::Sqlite, options.seed_users, revoked)?;
        report.add_run(seeded);
        if postgres.is_some() {
            let seeded = bench.seeded_run(Backend::Postgres, options.seed_users, revoked)?;
            report.add_run(seeded);
        }
    }

    banner("enumeration: known vs unknown addresses, medians (limits off)");
    let gaps = enumeration::run(&bench.binary)?;

    report.machine.compilers_at_end = count_compilers();
    report.total_seconds = started.elapsed().as_secs_f64();
    report.evaluate();
    report.add_enumeration(gaps);
    report.print();
    report.write(&json_path, &md_path)?;
    Ok(())
}

/// The run with the median rate of `runs` (the upper one of an even count).
fn median(mut runs: Vec<Measured>) -> Measured {
    runs.sort_by(|a, b| a.req_per_sec.total_cmp(&b.req_per_sec));
    let middle = runs.len() / 2;
    runs.swap_remove(middle)
}

fn banner(title: &str) {
    use std::io::Write;
    println!("\n==> [bench] {title}");
    let _ = std::io::stdout().flush();
}

// ---------------------------------------------------------------------------------------------
// Runs

struct Bench {
    binary: PathBuf,
    /// `bench_floor`: the bare actix-web handler.
    floor: PathBuf,
    layers: bool,
    generator: Generator,
    seconds: u64,
    concurrency: usize,
    scratch: PathBuf,
}

/// Everything measured on one database.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Run {
    pub name: String,
    pub backend: String,
    pub seeded_users: u64,
    pub seeded_revoked_sessions: u64,
    pub seed_seconds: Option<f64>,
    pub startup_ms: f64,
    pub rss_idle_mib: Option<f64>,
    pub rss_peak_mib: Option<f64>,
    pub healthz: Option<Measured>,
    /// GET /healthz on a bare actix-web handler (the ceiling).
    pub floor_healthz: Option<Measured>,
    /// Warm GET /me on the bare handler answering the server's own `/me`
    /// body: the same request and body on the wire, none of the work.
    pub floor_me: Option<Measured>,
    /// The bare handler behind the server's middleware.
    pub layer_healthz: Vec<(String, Measured)>,
    pub me_warm: Option<Measured>,
    pub me_cold: Option<Measured>,
    pub refresh: Option<Measured>,
    /// The database's own rate for the refresh statements: one rotation per
    /// transaction, and `concurrency` per transaction (group commit's best case).
    pub refresh_ceiling_single: Option<ceiling::Ceiling>,
    pub refresh_ceiling_batched: Option<ceiling::Ceiling>,
    pub login: Option<Measured>,
    pub flood_login: Option<Measured>,
    pub flood_me_probe: Option<Measured>,
    pub overflow_login: Option<Measured>,
    /// Status and Retry-After of a login refused while the queue is full.
    pub overflow_answer: Option<String>,
    /// Login with TOTP (password, then code) next to the password alone.
    pub totp_login: Option<mfa::TotpLogin>,
}

impl Run {
    fn new(name: &str, backend: &str, seed_seconds: Option<f64>) -> Self {
        Self {
            name: name.to_owned(),
            backend: backend.to_owned(),
            seed_seconds,
            ..Run::default()
        }
    }
}

impl Bench {
    fn spec(&self, path: &str, workload: Workload, connections: usize) -> Spec {
        Spec {
            path: path.to_owned(),
            workload,
            connections,
            seconds: self.seconds,
            delay_ms: None,
        }
    }

    fn measure(&self, server: &Server, title: &str, spec: &Spec) -> Result<Measured> {
        banner(&format!("{title} ({} connections)", spec.connections));
        let measured = self.generator.run(&server.base_url, spec, &self.scratch)?;
        println!(
            "{:.0} req/s ok, p50 {:.2} ms, p99 {:.2} ms, {} errors",
            measured.req_per_sec, measured.p50_ms, measured.p99_ms, measured.errors
        );
        if measured.req_per_sec == 0.0 {
            bail!("{title}: no request succeeded");
        }
        Ok(measured)
    }

    /// The full set on SQLite: every endpoint, cold and warm tokens, the
    /// login flood, memory and start-up.
    fn sqlite_run(&self, name: &str, settings: &[(&str, &str)]) -> Result<Run> {
        banner(&format!("{name}: preparing a fresh SQLite database"));
        let env = Env::create(&self.binary, Backend::Sqlite, settings)?;
        let mut run = Run::new(name, "sqlite", None);
        let (server, api, access) = self.open(&env, &mut run)?;
        self.against_the_floor(&server, &api, &access, &mut run)?;
        self.layers(&mut run)?;
        banner(&format!(
            "minting {COLD_TOKENS} access tokens for the cold run"
        ));
        let minted = tokens::mint(&env.keys_dir(), &access, COLD_TOKENS)?;
        run.me_cold = Some(self.measure(
            &server,
            "GET /api/v1/auth/me, every token new (cold: full verification)",
            &self.spec(
                "/api/v1/auth/me",
                Workload::GetBearerEach(minted),
                self.concurrency,
            ),
        )?);
        run.refresh = Some(self.refresh(&server, &api)?);
        self.refresh_ceilings(&env, &mut run)?;
        run.login = Some(self.login(&server)?);
        let (flood, probe) = self.flood(&server, &access)?;
        run.flood_login = Some(flood);
        run.flood_me_probe = Some(probe);
        let mut overflow = self.spec("/api/v1/auth/login", login_workload(), OVERFLOW_CONNECTIONS);
        overflow.seconds = OVERFLOW_SECONDS;
        banner(&format!(
            "login overflow ({OVERFLOW_CONNECTIONS} connections, {OVERFLOW_SECONDS} s): \
             beyond the hashing queue, answers must be 503"
        ));
        let measured = self
            .generator
            .run(&server.base_url, &overflow, &self.scratch)?;
        println!(
            "{:.1} logins/s ok, {} refused (non-2xx)",
            measured.req_per_sec, measured.errors
        );
        run.overflow_login = Some(measured);
        let refused = self.refused_status(&server)?;
        println!("a refused login answers: {refused}");
        run.overflow_answer = Some(refused);
        run.rss_peak_mib = Some(server.memory_mib()?.1);
        println!("peak RSS: {:.1} MiB", run.rss_peak_mib.unwrap_or_default());
        // Last: its users and sessions must not weigh on the figures above.
        run.totp_login = Some(self.totp_login(&env, &server)?);
        Ok(run)
    }

    /// PostgreSQL with a 32-connection pool: refresh (the write path), login
    /// and warm /me, and start-up.
    fn postgres_run(&self, name: &str, _seed: u64) -> Result<Run> {
        banner(&format!("{name}: preparing a fresh PostgreSQL database"));
        let pool = self.concurrency.to_string();
        let env = Env::create(
            &self.binary,
            Backend::Postgres,
            &[("AUTH_DB_POOL_SIZE", &pool)],
        )?;
        self.db_run(name, "postgres", &env, None)
    }

    /// Seeds a fresh database, then measures what must not degrade with data.
    fn seeded_run(&self, backend: Backend, users: u64, revoked: u64) -> Result<Run> {
        let (name, label) = match backend {
            Backend::Sqlite => ("sqlite_seeded", "sqlite"),
            Backend::Postgres => ("postgres_seeded", "postgres"),
        };
        banner(&format!(
            "{name}: seeding {users} users and {revoked} revoked sessions"
        ));
        let pool = self.concurrency.to_string();
        let settings: Vec<(&str, &str)> = match backend {
            Backend::Postgres => vec![("AUTH_DB_POOL_SIZE", &pool)],
            Backend::Sqlite => Vec::new(),
        };
        let env = Env::create(&self.binary, backend, &settings)?;
        let seeded = seed::seed(&env.url(), users, revoked, REVOCATION_TTL_SECS)?;
        println!("seeded in {:.1} s", seeded.seconds);
        let mut run = self.db_run(name, label, &env, Some(seeded.seconds))?;
        run.seeded_users = seeded.users;
        run.seeded_revoked_sessions = seeded.revoked_sessions;
        Ok(run)
    }

    /// Start-up, warm /me, refresh and login on a prepared database.
    fn db_run(&self, name: &str, backend: &str, env: &Env, seed: Option<f64>) -> Result<Run> {
        let mut run = Run::new(name, backend, seed);
        let (server, api, access) = self.open(env, &mut run)?;
        run.me_warm = Some(self.measure(
            &server,
            "GET /api/v1/auth/me, one token (warm)",
            &self.spec(
                "/api/v1/auth/me",
                Workload::GetBearer(access),
                self.concurrency,
            ),
        )?);
        run.refresh = Some(self.refresh(&server, &api)?);
        if seed.is_none() {
            self.refresh_ceilings(env, &mut run)?;
        }
        run.login = Some(self.login(&server)?);
        run.rss_peak_mib = Some(server.memory_mib()?.1);
        if seed.is_none() {
            run.totp_login = Some(self.totp_login(env, &server)?);
        }
        Ok(run)
    }

    /// GET /healthz and warm GET /me on the server and on the bare
    /// actix-web handler (which answers `/me` with the server's own body,
    /// byte for byte), in turn, [`FLOOR_ROUNDS`] times; each figure is the
    /// median of its rounds. The bare handler alone swings by ±5 % from
    /// one run to the next, so a ratio of two single runs said more about
    /// the moment than about the server.
    fn against_the_floor(
        &self,
        server: &Server,
        api: &Api,
        access: &str,
        run: &mut Run,
    ) -> Result<()> {
        let me_body = self
            .scratch
            .join(format!("bench-me-{}.json", std::process::id()));
        std::fs::write(&me_body, api.me(access)?)
            .with_context(|| format!("writing {}", me_body.display()))?;
        let floor = Server::floor(&self.floor, "", Some(&me_body));
        let _ = std::fs::remove_file(&me_body);
        let floor = floor?;
        let healthz = self.spec("/healthz", Workload::Get, self.concurrency);
        let me = self.spec(
            "/api/v1/auth/me",
            Workload::GetBearer(access.to_owned()),
            self.concurrency,
        );
        let mut rounds: [Vec<Measured>; 4] = Default::default();
        for round in 1..=FLOOR_ROUNDS {
            let of = format!("round {round} of {FLOOR_ROUNDS}");
            rounds[0].push(self.measure(server, &format!("GET /healthz, {of}"), &healthz)?);
            rounds[1].push(self.measure(
                &floor,
                &format!("GET /healthz, bare actix-web handler (ceiling), {of}"),
                &healthz,
            )?);
            rounds[2].push(self.measure(
                server,
                &format!("GET /api/v1/auth/me, one token (warm: cache hits), {of}"),
                &me,
            )?);
            rounds[3].push(self.measure(
                &floor,
                &format!("GET /api/v1/auth/me, bare handler, the same answer, {of}"),
                &me,
            )?);
        }
        let [healthz, floor_healthz, me_warm, floor_me] = rounds.map(median);
        println!(
            "medians: /healthz {:.0}, bare {:.0}; /me warm {:.0}, bare {:.0} req/s",
            healthz.req_per_sec,
            floor_healthz.req_per_sec,
            me_warm.req_per_sec,
            floor_me.req_per_sec
        );
        run.healthz = Some(healthz);
        run.floor_healthz = Some(floor_healthz);
        run.me_warm = Some(me_warm);
        run.floor_me = Some(floor_me);
        Ok(())
    }

    /// With `--layers`: GET /healthz on the bare handler behind the
    /// server's middleware (`auth_http::Edge`, its one layer).
    fn layers(&self, run: &mut Run) -> Result<()> {
        if self.layers {
            let layers = "edge";
            let floor = Server::floor(&self.floor, layers, None)?;
            let measured = self.measure(
                &floor,
                &format!("GET /healthz, bare handler + {layers}"),
                &self.spec("/healthz", Workload::Get, self.concurrency),
            )?;
            run.layer_healthz.push((layers.to_owned(), measured));
        }
        Ok(())
    }

    /// The database's own refresh ceiling (see `ceiling`), one rotation and
    /// `concurrency` rotations per transaction.
    fn refresh_ceilings(&self, env: &Env, run: &mut Run) -> Result<()> {
        for batch in [1, self.concurrency] {
            banner(&format!(
                "refresh statements straight to the database, {batch} per transaction"
            ));
            let measured = ceiling::refresh(&self.floor, &env.url(), batch, self.seconds)?;
            println!(
                "{:.0} rotations/s, transaction p50 {:.2} ms, p99 {:.2} ms",
                measured.per_sec, measured.p50_ms, measured.p99_ms
            );
            if batch == 1 {
                run.refresh_ceiling_single = Some(measured);
            } else {
                run.refresh_ceiling_batched = Some(measured);
            }
        }
        Ok(())
    }

    /// Measures start-up, starts the server, records idle memory and logs
    /// in once: what every run begins with.
    fn open(&self, env: &Env, run: &mut Run) -> Result<(Server, Api, String)> {
        run.startup_ms = env.startup_ms(STARTUP_RUNS)?;
        println!(
            "start-up to ready: {:.1} ms (median of {STARTUP_RUNS})",
            run.startup_ms
        );
        let server = env.start(&[])?;
        std::thread::sleep(Duration::from_millis(300));
        run.rss_idle_mib = Some(server.memory_mib()?.0);
        println!("idle RSS: {:.1} MiB", run.rss_idle_mib.unwrap_or_default());
        let api = Api::new(&server.base_url)?;
        let access = api.login()?.access;
        Ok((server, api, access))
    }

    fn login(&self, server: &Server) -> Result<Measured> {
        self.measure(
            server,
            "POST /api/v1/auth/login",
            &self.spec("/api/v1/auth/login", login_workload(), LOGIN_CONNECTIONS),
        )
    }

    /// Login with TOTP next to the password alone, at the login run's
    /// connections and at one (see `mfa`).
    fn totp_login(&self, env: &Env, server: &Server) -> Result<mfa::TotpLogin> {
        mfa::measure(env, &server.base_url, LOGIN_CONNECTIONS, self.seconds)
    }

    fn refresh(&self, server: &Server, api: &Api) -> Result<Measured> {
        // Two sessions per connection: a spare for each chain.
        let sessions = 2 * self.concurrency;
        println!("\nlogging in {sessions} sessions for the refresh chains...");
        let tokens = (0..sessions)
            .map(|_| api.login().map(|t| t.refresh))
            .collect::<Result<Vec<_>>>()?;
        self.measure(
            server,
            "POST /api/v1/auth/refresh",
            &self.spec(
                "/api/v1/auth/refresh",
                Workload::RefreshChains(tokens),
                self.concurrency,
            ),
        )
    }

    /// Logins from far more connections than there are hashing threads,
    /// while a paced probe measures /me latency.
    fn flood(&self, server: &Server, access: &str) -> Result<(Measured, Measured)> {
        banner(&format!(
            "login flood ({FLOOD_CONNECTIONS} connections) with a paced /me probe \
             ({PROBE_CONNECTIONS} connections, {PROBE_DELAY_MS} ms pause)"
        ));
        let flood = self.spec("/api/v1/auth/login", login_workload(), FLOOD_CONNECTIONS);
        let mut probe = self.spec(
            "/api/v1/auth/me",
            Workload::GetBearer(access.to_owned()),
            PROBE_CONNECTIONS,
        );
        probe.delay_ms = Some(PROBE_DELAY_MS);
        // Logins still queued from the previous run must not count against this one.
        std::thread::sleep(Duration::from_secs(1));
        let (base, generator, scratch) = (&server.base_url, self.generator, &self.scratch);
        let (flood, probe) = std::thread::scope(|scope| {
            let flooding = scope.spawn(|| generator.run(base, &flood, scratch));
            // Let the queue fill before probing.
            std::thread::sleep(Duration::from_millis(300));
            let mut probe = probe.clone();
            probe.seconds = self.seconds.saturating_sub(1).max(1);
            let probed = generator.run(base, &probe, scratch);
            let flooded = flooding
                .join()
                .map_err(|_| anyhow!("flood thread panicked"));
            (flooded, probed)
        });
        let (flood, probe) = (flood??, probe?);
        println!(
            "flood: {:.1} logins/s ok, {} refused or failed; /me probe: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            flood.req_per_sec,
            flood.errors,
            probe.req_per_sec,
            probe.p50_ms,
            probe.p99_ms,
            probe.max_ms
        );
        Ok((flood, probe))
    }
}

impl Bench {
    /// Fills the hashing queue with slow logins, then sends one more and
    /// reports its status line and Retry-After.
    fn refused_status(&self, server: &Server) -> Result<String> {
        let mut filler = self.spec("/api/v1/auth/login", login_workload(), OVERFLOW_CONNECTIONS);
        filler.seconds = 2;
        let (base, generator, scratch) = (&server.base_url, self.generator, &self.scratch);
        std::thread::scope(|scope| {
            let filling = scope.spawn(|| generator.run(base, &filler, scratch));
            std::thread::sleep(Duration::from_millis(500));
            let api = Api::new(base)?;
            let answer = api.login_status();
            let _ = filling.join();
            answer
        })
    }
}

fn login_workload() -> Workload {
    Workload::Login {
        login: EMAIL.to_owned(),
        password: PASSWORD.to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// A few API calls to set up the load (not measured)

struct Api {
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
    base: String,
}

struct Tokens {
    access: String,
    refresh: String,
}

impl Api {
    fn new(base: &str) -> Result<Api> {
        Ok(Api {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
            // No idle connections: the server closes them after its
            // keep-alive while the load runs, and a reused one would fail.
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()?,
            base: base.to_owned(),
        })
    }

    /// One login's status and Retry-After, whatever they are.
    fn login_status(&self) -> Result<String> {
        self.runtime.block_on(async {
            let response = self
                .client
                .post(format!("{}/api/v1/auth/login", self.base))
                .json(&serde_json::json!({ "login": EMAIL, "password": PASSWORD }))
                .send()
                .await?;
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map_or_else(
                    || "no Retry-After".to_owned(),
                    |v| format!("Retry-After: {v}"),
                );
            Ok(format!("{}, {retry_after}", response.status()))
        })
    }

    /// The body of `GET /api/v1/auth/me` for `access`.
    fn me(&self, access: &str) -> Result<Vec<u8>> {
        self.runtime.block_on(async {
            let response = self
                .client
                .get(format!("{}/api/v1/auth/me", self.base))
                .bearer_auth(access)
                .send()
                .await?;
            let status = response.status();
            if !status.is_success() {
                bail!("/me: HTTP {status}");
            }
            Ok(response.bytes().await?.to_vec())
        })
    }

    fn login(&self) -> Result<Tokens> {
        let body: Value = self.runtime.block_on(async {
            let response = self
                .client
                .post(format!("{}/api/v1/auth/login", self.base))
                .json(&serde_json::json!({ "login": EMAIL, "password": PASSWORD }))
                .send()
                .await?;
            let status = response.status();
            if !status.is_success() {
                bail!("login: HTTP {status}");
            }
            Ok::<Value, anyhow::Error>(response.json().await?)
        })?;
        let field = |name: &str| {
            body[name]
                .as_str()
                .map(str::to_owned)
                .with_context(|| format!("login answer has no {name}"))
        };
        Ok(Tokens {
            access: field("access_token")?,
            refresh: field("refresh_token")?,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Environment

#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu_model: String,
    pub compilers_at_start: usize,
    pub compilers_at_end: usize,
}

impl Machine {
    fn describe() -> Machine {
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find_map(|l| l.strip_prefix("model name"))
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
            })
            .unwrap_or_else(|| "unknown CPU".to_owned());
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            compilers_at_start: count_compilers(),
            compilers_at_end: 0,
        }
    }
}

/// `rustc` processes running now (other builds on a shared machine skew figures).
fn count_compilers() -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == "rustc")
        })
        .count()
}

fn postgres_unreachable() -> Option<String> {
    use diesel::Connection;
    let url = storage::test_support::postgres_admin_url();
    match diesel::PgConnection::establish(&url) {
        Ok(_) => None,
        Err(e) => Some(format!(
            "cannot connect to {url} ({}); set AUTH_TEST_DATABASE_URL or start PostgreSQL",
            e.to_string().trim()
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Argon2

/// Median time of one Argon2id hash at the server's default cost, reusing one
/// buffer as the server's hashing threads do.
/// An Argon2id hasher with its own reused buffer, as each of the server's
/// hashing threads has (m=19456 KiB, t=2, p=1).
struct Hasher {
    argon2: argon2::Argon2<'static>,
    blocks: Vec<argon2::Block>,
}

impl Hasher {
    fn new() -> Result<Self> {
        use argon2::{Algorithm, Argon2, Block, Params, Version};
        let params =
            Params::new(19_456, 2, 1, Some(32)).map_err(|e| anyhow!("argon2 params: {e}"))?;
        let blocks = vec![Block::new(); params.block_count()];
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let mut hasher = Hasher { argon2, blocks };
        hasher.hash()?; // warm-up: page faults
        Ok(hasher)
    }

    fn hash(&mut self) -> Result<()> {
        let mut output = [0_u8; 32];
        self.argon2
            .hash_password_into_with_memory(
                PASSWORD.as_bytes(),
                &[0x5a_u8; 16],
                &mut output,
                &mut self.blocks,
            )
            .map_err(|e| anyhow!("argon2: {e}"))
    }
}

fn argon2_median_ms() -> Result<f64> {
    let mut hasher = Hasher::new()?;
    let mut times = Vec::with_capacity(ARGON2_RUNS);
    for _ in 0..ARGON2_RUNS {
        let start = Instant::now();
        hasher.hash()?;
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// Hashes per second with `threads` hashing at once: what the cores really
/// give when every one of them hashes (Argon2 is memory-hard; concurrent
/// hashes share the caches and the memory bus, so this is below
/// `threads` ÷ one hash's time).
fn argon2_parallel_per_sec(threads: usize) -> Result<f64> {
    let barrier = std::sync::Barrier::new(threads);
    let elapsed = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| -> Result<f64> {
                    let mut hasher = Hasher::new()?;
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..ARGON2_RUNS {
                        hasher.hash()?;
                    }
                    Ok(start.elapsed().as_secs_f64())
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().map_err(|_| anyhow!("argon2 thread panicked"))?)
            .collect::<Result<Vec<f64>>>()
    })?;
    let slowest = elapsed.into_iter().fold(0.0, f64::max);
    Ok((threads * ARGON2_RUNS) as f64 / slowest)
}

//! The figures of the performance budget, each with its target and whether
//! it is met; printed as a table and written as JSON and markdown.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::Serialize;

use super::load::Generator;
use super::{Machine, Options, Run};

#[derive(Clone, Debug, Serialize)]
pub struct Figure {
    pub name: String,
    pub value: f64,
    pub unit: &'static str,
    /// e.g. `>= 0.8`; `None` for figures reported without a target.
    pub target: Option<String>,
    pub met: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Serialize)]
pub struct Report {
    pub unix_time: u64,
    pub machine: Machine,
    pub load_generator: Generator,
    pub seconds_per_run: u64,
    pub concurrency: usize,
    pub argon2_median_ms: f64,
    /// Hashes per second with every core hashing at once.
    pub argon2_parallel_per_sec: f64,
    pub total_seconds: f64,
    pub figures: Vec<Figure>,
    pub notes: Vec<String>,
    pub runs: Vec<Run>,
}

enum Bound {
    AtLeast(f64),
    Below(f64),
}

impl Report {
    pub fn new(options: &Options, machine: Machine, load_generator: Generator) -> Report {
        Report {
            unix_time: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            machine,
            load_generator,
            seconds_per_run: options.seconds,
            concurrency: options.concurrency,
            argon2_median_ms: 0.0,
            argon2_parallel_per_sec: 0.0,
            total_seconds: 0.0,
            figures: Vec::new(),
            notes: Vec::new(),
            runs: Vec::new(),
        }
    }

    pub fn add_run(&mut self, run: Run) {
        self.runs.push(run);
    }

    fn run(&self, name: &str) -> Option<&Run> {
        self.runs.iter().find(|r| r.name == name)
    }

    fn push(&mut self, name: &str, value: f64, unit: &'static str, bound: Option<Bound>) {
        let (target, met) = match bound {
            Some(Bound::AtLeast(t)) => (Some(format!(">= {t}")), Some(value >= t)),
            Some(Bound::Below(t)) => (Some(format!("< {t}")), Some(value < t)),
            None => (None, None),
        };
        self.figures.push(Figure {
            name: name.to_owned(),
            value,
            unit,
            target,
            met,
            note: None,
        });
    }

    fn note_last(&mut self, note: impl Into<String>) {
        if let Some(f) = self.figures.last_mut() {
            f.note = Some(note.into());
        }
    }

    /// One figure per flow: how far apart the median answer times for a
    /// known and an unknown address are (issue: no enumeration by timing).
    pub fn add_enumeration(&mut self, gaps: Vec<super::enumeration::Gap>) {
        for gap in gaps {
            self.push(
                &format!("enumeration timing gap: {}", gap.flow),
                gap.difference_ms(),
                "ms",
                Some(Bound::Below(gap.allowance_ms())),
            );
            self.note_last(format!(
                "median known {:.2} ms, unknown {:.2} ms",
                gap.known_median_ms, gap.unknown_median_ms
            ));
        }
    }

    /// Turns the runs into the budget's figures.
    pub fn evaluate(&mut self) {
        let cores = self.machine.cores as f64;
        let argon2_s = self.argon2_median_ms / 1000.0;
        if let Some(sqlite) = self.run("sqlite").cloned() {
            let rate = |m: &Option<super::Measured>| m.as_ref().map_or(0.0, |m| m.req_per_sec);
            let healthz = rate(&sqlite.healthz);
            let (warm, cold) = (rate(&sqlite.me_warm), rate(&sqlite.me_cold));
            self.push("GET /healthz", healthz, "req/s", None);
            self.note_last(format!(
                "each /healthz and warm /me figure: the median of {} rounds taken in turn",
                super::FLOOR_ROUNDS
            ));
            self.push("GET /me, warm (token seen before)", warm, "req/s", None);
            self.push("GET /me, cold (every token new)", cold, "req/s", None);
            self.note_last("full Ed25519 verification + cache insert on every request");
            self.push(
                "/me warm ÷ /healthz",
                ratio(warm, healthz),
                "ratio",
                Some(Bound::AtLeast(0.8)),
            );
            self.push("/me cold ÷ /healthz", ratio(cold, healthz), "ratio", None);
            if let Some(floor) = &sqlite.floor_healthz {
                let floor = floor.req_per_sec;
                self.push(
                    "GET /healthz, bare actix-web handler (ceiling)",
                    floor,
                    "req/s",
                    None,
                );
                self.note_last("same body and workers, no middleware, one route");
                self.push(
                    "/healthz ÷ bare actix-web handler",
                    ratio(healthz, floor),
                    "ratio",
                    Some(Bound::AtLeast(0.9)),
                );
                self.push(
                    "/me warm ÷ bare actix-web handler",
                    ratio(warm, floor),
                    "ratio",
                    Some(Bound::AtLeast(0.8)),
                );
                self.note_last("the issue's figure: the bare handler answers /healthz");
                if let Some(floor_me) = &sqlite.floor_me {
                    let floor_me = floor_me.req_per_sec;
                    self.push(
                        "GET /me, bare handler answering the server's /me answer",
                        floor_me,
                        "req/s",
                        None,
                    );
                    self.note_last("same request and body, no token check, no middleware");
                    self.push(
                        "/me warm ÷ bare handler answering the same /me",
                        ratio(warm, floor_me),
                        "ratio",
                        Some(Bound::AtLeast(0.8)),
                    );
                    self.note_last(
                        "what our code costs on /me: the wire's cost (a ~700-byte token in, \
                         the user out) is in both",
                    );
                }
                for (layers, measured) in &sqlite.layer_healthz {
                    self.push(
                        &format!("bare handler + {layers} ÷ bare handler"),
                        ratio(measured.req_per_sec, floor),
                        "ratio",
                        None,
                    );
                    self.note_last(format!("{:.0} req/s", measured.req_per_sec));
                }
            }
            self.refresh_figures("SQLite", &sqlite);
            let login = rate(&sqlite.login);
            let ceiling = cores / argon2_s;
            self.push("POST /login", login, "req/s", None);
            self.note_last(format!(
                "ceiling cores ÷ Argon2 = {cores} ÷ {:.1} ms = {ceiling:.1}/s",
                self.argon2_median_ms
            ));
            self.push(
                "/login ÷ (cores ÷ one Argon2 hash)",
                ratio(login, ceiling),
                "ratio",
                Some(Bound::AtLeast(0.9)),
            );
            // The same, against what the cores give with all of them hashing.
            self.push(
                "/login ÷ Argon2 throughput with every core hashing",
                ratio(login, self.argon2_parallel_per_sec),
                "ratio",
                None,
            );
            self.note_last(format!(
                "{:.1} hashes/s measured with {cores} threads at once",
                self.argon2_parallel_per_sec
            ));
            if let (Some(flood), Some(probe)) = (&sqlite.flood_login, &sqlite.flood_me_probe) {
                let (flood, probe) = (flood.clone(), probe.clone());
                self.push(
                    "/me p99 during a login flood",
                    probe.p99_ms,
                    "ms",
                    Some(Bound::Below(5.0)),
                );
                self.note_last(format!(
                    "probe {:.0} req/s, p50 {:.2} ms, max {:.2} ms; flood {:.1} logins/s ok, {} refused (503) or failed",
                    probe.req_per_sec, probe.p50_ms, probe.max_ms, flood.req_per_sec, flood.errors
                ));
            }
            if let Some(overflow) = &sqlite.overflow_login {
                let refused = overflow.errors as f64;
                self.push(
                    "logins refused when the hashing queue is full",
                    refused,
                    "answers",
                    None,
                );
                self.note_last(format!(
                    "128 connections for 2 s; {:.1} logins/s still served; a refused login answers {}",
                    overflow.req_per_sec,
                    sqlite.overflow_answer.as_deref().unwrap_or("?")
                ));
            }
            if let Some(idle) = sqlite.rss_idle_mib {
                self.push("RSS idle", idle, "MiB", Some(Bound::Below(50.0)));
            }
            if let Some(peak) = sqlite.rss_peak_mib {
                self.push(
                    "RSS peak under the load above",
                    peak,
                    "MiB",
                    Some(Bound::Below(100.0)),
                );
            }
            self.push(
                "start-up to ready, SQLite",
                sqlite.startup_ms,
                "ms",
                Some(Bound::Below(200.0)),
            );
            self.totp_figures("SQLite", &sqlite);
        }
        if let Some(pg) = self.run("postgres").cloned() {
            self.refresh_figures(&format!("PostgreSQL, pool {}", self.concurrency), &pg);
            self.push(
                "start-up to ready, PostgreSQL",
                pg.startup_ms,
                "ms",
                Some(Bound::Below(200.0)),
            );
            self.totp_figures("PostgreSQL", &pg);
        }
        for (empty, seeded) in [("sqlite", "sqlite_seeded"), ("postgres", "postgres_seeded")] {
            let (Some(e), Some(s)) = (self.run(empty).cloned(), self.run(seeded).cloned()) else {
                continue;
            };
            let label = format!(
                "{} users, {} revoked sessions, {}",
                s.seeded_users, s.seeded_revoked_sessions, s.backend
            );
            for (what, a, b) in [
                ("/login", &e.login, &s.login),
                ("/refresh", &e.refresh, &s.refresh),
                ("/me warm", &e.me_warm, &s.me_warm),
            ] {
                let (Some(a), Some(b)) = (a, b) else { continue };
                self.push(
                    &format!("{what} seeded ÷ empty ({label})"),
                    ratio(b.req_per_sec, a.req_per_sec),
                    "ratio",
                    Some(Bound::AtLeast(0.9)),
                );
                self.note_last(format!(
                    "{:.1} vs {:.1} req/s",
                    b.req_per_sec, a.req_per_sec
                ));
            }
            self.push(
                &format!("start-up to ready ({label})"),
                s.startup_ms,
                "ms",
                Some(Bound::Below(200.0)),
            );
        }
        if self.load_generator == Generator::Builtin {
            self.notes.push(
                "built-in load generator (wrk missing): throughput figures are client-bound"
                    .to_owned(),
            );
        }
        if self.machine.compilers_at_start + self.machine.compilers_at_end > 0 {
            self.notes.push(format!(
                "taken under load: {} rustc processes at the start, {} at the end",
                self.machine.compilers_at_start, self.machine.compilers_at_end
            ));
        }
    }

    /// Login with TOTP next to the password alone (same client): throughput
    /// at the login run's connections, and the time TOTP adds to a login
    /// with one connection (an idle server) and with all of them.
    fn totp_figures(&mut self, label: &str, run: &Run) {
        let Some(totp) = &run.totp_login else { return };
        let (loaded, single) = (&totp.loaded, &totp.single);
        let stalls = |c: &super::mfa::Comparison| {
            if c.stalls > 0 {
                format!("; {} stalls waiting for a fresh time step", c.stalls)
            } else {
                String::new()
            }
        };
        self.push(
            &format!(
                "login with TOTP (password, then code), {label}, {} connections",
                loaded.connections
            ),
            loaded.totp_flow.req_per_sec,
            "req/s",
            None,
        );
        self.note_last(format!(
            "logins/s; p50 {:.2} ms, p99 {:.2} ms; password alone, same client: {:.1}/s, p50 {:.2} ms, p99 {:.2} ms; {} users{}",
            loaded.totp_flow.p50_ms,
            loaded.totp_flow.p99_ms,
            loaded.password_only.req_per_sec,
            loaded.password_only.p50_ms,
            loaded.password_only.p99_ms,
            totp.users,
            stalls(loaded)
        ));
        self.push(
            &format!("login with TOTP ÷ password alone, {label}"),
            ratio(
                loaded.totp_flow.req_per_sec,
                loaded.password_only.req_per_sec,
            ),
            "ratio",
            None,
        );
        for c in [single, loaded] {
            self.push(
                &format!(
                    "time TOTP adds to a login (p50), {label}, {} connection{}",
                    c.connections,
                    if c.connections == 1 { "" } else { "s" }
                ),
                c.added_p50_ms(),
                "ms",
                None,
            );
            self.note_last(format!(
                "with TOTP p50 {:.2} ms, p99 {:.2} ms vs password alone p50 {:.2} ms, p99 {:.2} ms; /mfa/verify alone p50 {:.2} ms, p99 {:.2} ms{}",
                c.totp_flow.p50_ms,
                c.totp_flow.p99_ms,
                c.password_only.p50_ms,
                c.password_only.p99_ms,
                c.verify_step.p50_ms,
                c.verify_step.p99_ms,
                stalls(c)
            ));
        }
    }

    /// Refresh throughput and latency at `concurrency` connections, and the
    /// database's own ceiling for the same statements.
    fn refresh_figures(&mut self, label: &str, run: &Run) {
        let Some(refresh) = &run.refresh else { return };
        let connections = self.concurrency;
        self.push(
            &format!("POST /refresh, {label}"),
            refresh.req_per_sec,
            "req/s",
            Some(Bound::AtLeast(10_000.0)),
        );
        self.note_last(format!(
            "{connections} connections, p50 {:.2} ms",
            refresh.p50_ms
        ));
        self.push(
            &format!("POST /refresh p99, {label}"),
            refresh.p99_ms,
            "ms",
            Some(Bound::Below(20.0)),
        );
        for ceiling in [&run.refresh_ceiling_single, &run.refresh_ceiling_batched]
            .into_iter()
            .flatten()
        {
            self.push(
                &format!(
                    "refresh statements straight to the database, {} per transaction, {label}",
                    ceiling.batch
                ),
                ceiling.per_sec,
                "req/s",
                None,
            );
            self.note_last(format!(
                "transaction p50 {:.2} ms, p99 {:.2} ms",
                ceiling.p50_ms, ceiling.p99_ms
            ));
        }
        if let Some(ceiling) = &run.refresh_ceiling_batched {
            self.push(
                &format!("/refresh ÷ database ceiling, {label}"),
                ratio(refresh.req_per_sec, ceiling.per_sec),
                "ratio",
                None,
            );
            self.note_last(format!(
                "ceiling: {} rotations per transaction, no HTTP or signing",
                ceiling.batch
            ));
        }
    }

    fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "| figure | value | target | met |");
        let _ = writeln!(out, "|---|---:|---|---|");
        for f in &self.figures {
            let value = match f.unit {
                "ratio" => format!("{:.3}", f.value),
                "req/s" if f.value < 1000.0 => format!("{:.1} req/s", f.value),
                "req/s" => format!("{:.0} req/s", f.value),
                unit => format!("{:.1} {unit}", f.value),
            };
            let met = match f.met {
                Some(true) => "met",
                Some(false) => "NOT met",
                None => "",
            };
            let name = match &f.note {
                Some(note) => format!("{} ({note})", f.name),
                None => f.name.clone(),
            };
            let target = f.target.clone().unwrap_or_default();
            let _ = writeln!(out, "| {name} | {value} | {target} | {met} |");
        }
        out
    }

    pub fn print(&self) {
        super::banner("results");
        println!(
            "{} cores ({}), load generator {:?}, {} s per run, {} connections, Argon2 {:.1} ms, {:.0} s in all",
            self.machine.cores,
            self.machine.cpu_model,
            self.load_generator,
            self.seconds_per_run,
            self.concurrency,
            self.argon2_median_ms,
            self.total_seconds
        );
        println!();
        print!("{}", self.table());
        for note in &self.notes {
            println!("note: {note}");
        }
        let missed = self.figures.iter().filter(|f| f.met == Some(false)).count();
        let targets = self.figures.iter().filter(|f| f.met.is_some()).count();
        println!(
            "\n{} of {targets} targets met (reported, never enforced: this is a benchmark, not a test)",
            targets - missed
        );
    }

    pub fn write(&self, json: &Path, markdown: &Path) -> Result<()> {
        if let Some(dir) = json.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(json, serde_json::to_string_pretty(self)? + "\n")
            .with_context(|| format!("writing {}", json.display()))?;
        let mut md = format!(
            "# cargo xtask bench\n\n{} cores, {}; load generator {:?}; {} s per run; {} connections; Argon2id {:.1} ms per hash.\n\n",
            self.machine.cores,
            self.machine.cpu_model,
            self.load_generator,
            self.seconds_per_run,
            self.concurrency,
            self.argon2_median_ms
        );
        md.push_str(&self.table());
        for note in &self.notes {
            let _ = writeln!(md, "\nNote: {note}");
        }
        std::fs::write(markdown, md).with_context(|| format!("writing {}", markdown.display()))?;
        println!("wrote {} and {}", json.display(), markdown.display());
        Ok(())
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

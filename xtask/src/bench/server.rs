//! The server under test: a throw-away database (SQLite file or a uniquely
//! named PostgreSQL database, dropped afterwards), the bench user, and
//! `auth-server serve` as a child process.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use storage::Backend;
use storage::test_support::TestDatabase;

use crate::run_checked;

pub const EMAIL: &str = "bench@example.com";
pub const PASSWORD: &str = "correct horse battery staple 42";
pub const ISSUER: &str = "http://bench.invalid";
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// A prepared database with its key and mail folders.
pub struct Env {
    pub db: TestDatabase,
    pub binary: PathBuf,
    /// Extra `AUTH_*` settings for every command.
    pub settings: Vec<(String, String)>,
}

impl Env {
    /// A new empty database, migrated, with the bench user.
    pub fn create(binary: &Path, backend: Backend, settings: &[(&str, &str)]) -> Result<Env> {
        let db = TestDatabase::create(backend);
        let env = Env {
            db,
            binary: binary.to_path_buf(),
            settings: settings
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        run_checked(
            "auth-server migrate",
            env.command().arg("migrate").stdin(Stdio::null()),
        )?;
        env.add_user()?;
        Ok(env)
    }

    pub fn url(&self) -> String {
        self.db.url_string()
    }

    pub fn keys_dir(&self) -> PathBuf {
        self.db.dir.join("keys")
    }

    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .env("AUTH_BIND", "127.0.0.1:0")
            .env("AUTH_DATABASE_URL", self.url())
            .env("AUTH_KEYS_DIR", self.keys_dir())
            .env("AUTH_MAIL_DIR", self.db.dir.join("mail"))
            .env("AUTH_ISSUER", ISSUER)
            .env("RUST_LOG", "warn");
        // The figures measure hashing, tokens and the database, not the
        // rate limits: one bench user logging in from many connections at
        // once would (rightly) hit the per-account budget, since every
        // attempt takes its place before its password is checked.
        for (k, v) in super::enumeration::NO_LIMITS {
            command.env(k, v);
        }
        for (k, v) in &self.settings {
            command.env(k, v);
        }
        command
    }

    fn add_user(&self) -> Result<()> {
        let mut child = self
            .command()
            .args(["user", "add", "--email", EMAIL, "--username", "bench"])
            .args(["--name", "Bench User"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .context("starting `auth-server user add`")?;
        {
            // The server reads the password from stdin when it is not a terminal.
            let mut stdin = child.stdin.take().context("user add: no stdin")?;
            writeln!(stdin, "{PASSWORD}")?;
        }
        let status = child.wait()?;
        if !status.success() {
            bail!("auth-server user add failed ({status})");
        }
        Ok(())
    }

    /// Starts `serve` and waits until `/readyz` answers 200.
    pub fn start(&self, extra: &[(&str, &str)]) -> Result<Server> {
        let mut command = self.command();
        for (k, v) in extra {
            command.env(k, v);
        }
        command.arg("serve");
        Server::spawn(command, "/readyz")
    }

    /// Median start-up-to-ready time of `runs` starts (each stopped again).
    pub fn startup_ms(&self, runs: usize) -> Result<f64> {
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            let server = self.start(&[])?;
            times.push(server.ready_after.as_secs_f64() * 1000.0);
            drop(server);
        }
        times.sort_by(f64::total_cmp);
        Ok(times[times.len() / 2])
    }
}

/// `auth-server serve`, killed on drop.
pub struct Server {
    child: Child,
    pub base_url: String,
    addr: String,
    /// From spawning the process to the first 200 from `/readyz`.
    pub ready_after: Duration,
}

impl Server {
    /// Spawns `command` (which prints `listening on URL` when bound) and
    /// waits until `ready_path` answers 200.
    fn spawn(mut command: Command, ready_path: &str) -> Result<Server> {
        let started = Instant::now();
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {:?}", command.get_program()))?;
        let mut server = Server {
            child,
            base_url: String::new(),
            addr: String::new(),
            ready_after: Duration::ZERO,
        };
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
        let deadline = started + STARTUP_TIMEOUT;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match lines_rx.recv_timeout(remaining) {
                Ok(line) => {
                    if let Some(url) = line.trim().strip_prefix("listening on ") {
                        server.base_url = url.trim_end_matches('/').to_string();
                        server.addr = server.base_url.trim_start_matches("http://").to_string();
                        break;
                    }
                    println!("[auth-server] {line}");
                }
                Err(_) => {
                    let status = server.child.try_wait().ok().flatten();
                    bail!("auth-server serve did not start (exit status: {status:?})");
                }
            }
        }
        while Instant::now() < deadline {
            if http_status(&server.addr, ready_path) == Some(200) {
                server.ready_after = started.elapsed();
                return Ok(server);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        bail!("the server never answered {ready_path} with 200")
    }

    /// The bare actix-web handler (`bench_floor`), behind `layers`
    /// (comma-separated: headers, finish, span; empty for none), also
    /// answering `/api/v1/auth/me` with the file `me_body` when given.
    pub fn floor(binary: &Path, layers: &str, me_body: Option<&Path>) -> Result<Server> {
        let mut command = Command::new(binary);
        if !layers.is_empty() {
            command.args(["--layers", layers]);
        }
        if let Some(path) = me_body {
            command.arg("--me-body").arg(path);
        }
        Server::spawn(command, "/healthz")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory now and at its peak, in MiB (Linux `/proc`).
    pub fn memory_mib(&self) -> Result<(f64, f64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .context("reading /proc/PID/status")?;
        let field = |name: &str| -> f64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|kb| kb.parse::<f64>().ok())
                .map_or(0.0, |kb| kb / 1024.0)
        };
        Ok((field("VmRSS:"), field("VmHWM:")))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 GET over a fresh connection; the status code, if any.
fn http_status(addr: &str, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

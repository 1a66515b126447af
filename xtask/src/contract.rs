//! The contract stage of `cargo xtask ci`: Schemathesis against the real
//! server binary and the OpenAPI document it serves, with every check, a
//! fixed seed and a bounded number of examples per operation, once for
//! each kind of caller. Zero failures and zero errors is the bar; the
//! exceptions, per operation and check, are in `xtask/schemathesis.toml`
//! with the reason for each.
//!
//! It is a step of its own rather than a `cargo test`: it needs a Python
//! tool that this step installs into a virtual environment, it reads the
//! server from outside as a client would (the binary, on port 0, with a
//! throw-away SQLite database), and its figures are reported on their own.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{cargo, provision, run_checked};

/// Test cases per operation and phase: enough to find what the document
/// and the server disagree about, few enough for minutes on two cores.
const MAX_EXAMPLES: u32 = 50;
/// Fixed, so a run is repeatable and a failure can be replayed.
const SEED: u64 = 20261202;

const OPERATOR: (&str, &str) = (
    "operator@contract.test",
    "operator passphrase for the contract stage",
);
const MEMBER: (&str, &str) = (
    "member@contract.test",
    "member passphrase for the contract stage",
);
const TARGET: (&str, &str) = (
    "target@contract.test",
    "target passphrase for the contract stage",
);

/// One run's figures, read from Schemathesis' summary.
#[derive(Debug, Default, PartialEq, Eq)]
struct Figures {
    operations: u64,
    cases: u64,
    failures: u64,
    errors: u64,
}

pub fn run(root: &Path, target: &Path) -> Result<String> {
    let schemathesis = provision::schemathesis(target)?;
    // The binary the test suite builds (a no-op after `cargo test
    // --workspace`): built on its own, with other features, it would be a
    // second copy of every dependency.
    run_checked(
        "building the server for the contract stage",
        Command::new(cargo()).current_dir(root).args([
            "test",
            "--workspace",
            "--no-run",
            "--quiet",
        ]),
    )?;
    let binary = target.join("debug").join("auth-server");
    let dir = target.join("tmp").join("contract");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;

    let server = Server::new(&binary, &dir);
    let ids = server.seed()?;
    let mut running = server.start()?;
    let outcome = (|| {
        let base = fs::read_to_string(root.join("xtask").join("schemathesis.toml"))
            .context("cannot read xtask/schemathesis.toml")?;
        let mut lines = Vec::new();
        let mut failed = Vec::new();
        for (caller, login) in [
            ("anonymous", None),
            ("member with every permission", Some(MEMBER)),
            ("operator with every permission", Some(OPERATOR)),
        ] {
            let config = dir.join(format!(
                "{}.toml",
                caller.split(' ').next().unwrap_or(caller)
            ));
            fs::write(&config, format!("{base}\n{}", auth_table(login, &ids)))?;
            println!("\n--- schemathesis, {caller} ---");
            let figures = schemathesis_run(&schemathesis, &config, &running.url, &dir, &ids)?;
            lines.push(format!(
                "{caller}: {} operations, {} cases, {} failures, {} errors",
                figures.operations, figures.cases, figures.failures, figures.errors
            ));
            if figures.failures > 0 || figures.errors > 0 || figures.operations == 0 {
                failed.push(caller);
            }
        }
        Ok::<_, anyhow::Error>((lines, failed))
    })();
    running.stop();
    let (lines, failed) = outcome?;
    let summary = format!(
        "schemathesis (seed {SEED}, {MAX_EXAMPLES} examples): {}",
        lines.join("; ")
    );
    if !failed.is_empty() {
        bail!(
            "{summary}\nthe contract is broken for: {} (server log: {})",
            failed.join(", "),
            dir.join("server.log").display()
        );
    }
    Ok(summary)
}

/// The `[auth]` table of one caller: the bearer token comes from logging
/// in (again whenever an answer is 401, e.g. after a generated logout), the
/// registered client's credentials sign `/oauth/*` and buzzbook's token
/// endpoint. Anonymous callers send neither.
fn auth_table(login: Option<(&str, &str)>, ids: &Ids) -> String {
    let Some((email, password)) = login else {
        return String::new();
    };
    format!(
        "[auth.dynamic.openapi.bearer]\n\
         path = \"/api/v1/auth/login\"\n\
         payload = {{ login = \"{email}\", password = \"{password}\" }}\n\
         extract_selector = \"/access_token\"\n\
         [auth.openapi.client_basic]\n\
         username = \"{}\"\n\
         password = \"{}\"\n",
        ids.client_id, ids.client_secret
    )
}

fn schemathesis_run(
    schemathesis: &Path,
    config: &Path,
    url: &str,
    dir: &Path,
    ids: &Ids,
) -> Result<Figures> {
    let mut child = Command::new(schemathesis)
        .current_dir(dir)
        .arg("--config-file")
        .arg(config)
        .args(["run", &format!("{url}/openapi.json")])
        .args(["--max-examples", &MAX_EXAMPLES.to_string()])
        .args(["--seed", &SEED.to_string()])
        .arg("--no-color")
        .env("ST_TARGET_USER_ID", &ids.target_user)
        .env("ST_ORGANIZATION_ID", &ids.organization)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start schemathesis")?;
    let stdout = child.stdout.take().context("schemathesis: no stdout")?;
    let mut text = String::new();
    let mut out = std::io::stdout();
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading schemathesis' output")?;
        let _ = writeln!(out, "{line}");
        text.push_str(&line);
        text.push('\n');
    }
    let status = child.wait().context("waiting for schemathesis")?;
    let figures = figures(&text);
    if !status.success() && figures.failures == 0 && figures.errors == 0 {
        bail!("schemathesis failed ({status}) without reporting a failure");
    }
    Ok(figures)
}

/// Reads the summary: `Tested: 55`, `1234 generated, 2 found 2 unique
/// failures, 3 errored, …`, and the `N failures, N errors` closing line.
fn figures(text: &str) -> Figures {
    let mut figures = Figures::default();
    let number_before = |line: &str, word: &str| -> Option<u64> {
        let words: Vec<&str> = line.split([' ', ',']).filter(|w| !w.is_empty()).collect();
        words
            .windows(2)
            .find(|pair| pair[1].starts_with(word))
            .and_then(|pair| pair[0].parse().ok())
    };
    for line in text.lines().map(str::trim) {
        if let Some(tested) = line.strip_prefix("Tested:") {
            figures.operations = tested.trim().parse().unwrap_or_default();
        }
        if line.contains(" generated") {
            figures.cases = number_before(line, "generated").unwrap_or_default();
            figures.failures = number_before(line, "unique").unwrap_or_default();
            figures.errors = number_before(line, "errored").unwrap_or_default();
        }
        if line.starts_with('=') {
            figures.failures = figures
                .failures
                .max(number_before(line, "failure").unwrap_or_default());
            figures.errors = figures
                .errors
                .max(number_before(line, "error").unwrap_or_default());
        }
    }
    figures
}

/// What the stage made before the run, named in the config's parameters.
struct Ids {
    target_user: String,
    organization: String,
    client_id: String,
    client_secret: String,
}

/// The server binary with a configuration of its own: SQLite in the stage's
/// folder, port 0, cheap password hashing, and no limits per IP or login
/// name (one client sends thousands of requests; the limits have tests of
/// their own). The mail limit per address stays, so 429 answers are seen.
struct Server {
    binary: PathBuf,
    dir: PathBuf,
}

struct Running {
    child: Child,
    url: String,
}

impl Running {
    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn new(binary: &Path, dir: &Path) -> Self {
        Self {
            binary: binary.to_owned(),
            dir: dir.to_owned(),
        }
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.binary);
        // Only this configuration: nothing from the caller's environment.
        for (key, _) in std::env::vars() {
            if key.starts_with("AUTH_") {
                command.env_remove(key);
            }
        }
        let dir = &self.dir;
        command
            .current_dir(dir)
            .env("AUTH_DATABASE_URL", dir.join("auth.db"))
            .env("AUTH_KEYS_DIR", dir.join("keys"))
            .env("AUTH_MAIL_DIR", dir.join("mail"))
            .env("AUTH_BIND", "127.0.0.1:0")
            .env("AUTH_ARGON2_MEMORY_KIB", "1024")
            .env("AUTH_ARGON2_ITERATIONS", "1")
            .env("AUTH_THROTTLE_LOGIN_ACCOUNT", "off")
            .env("AUTH_THROTTLE_LOGIN_IP", "off")
            .env("AUTH_THROTTLE_CODE_IP", "off")
            .env("AUTH_THROTTLE_MAIL_IP", "off")
            // The operator acts without a second factor (its endpoints are
            // still exercised: step-up and enrolment answers are documented).
            .env("AUTH_MFA_REQUIRED_ROLES", "")
            .env("AUTH_LOG_FORMAT", "json");
        command
    }

    /// Runs a CLI command (with `stdin` as the password), returning its output.
    fn cli(&self, args: &[&str], stdin: Option<&str>) -> Result<String> {
        let mut child = self
            .command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot run auth-server {}", args.join(" ")))?;
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .context("no stdin")?
                .write_all(format!("{input}\n").as_bytes())?;
        }
        let output = child.wait_with_output()?;
        if !output.status.success() {
            bail!(
                "auth-server {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// An operator and a member holding every permission, a throw-away user,
    /// an organization and a registered client, made with the CLI.
    fn seed(&self) -> Result<Ids> {
        let everything = "sms:send sms:read fame:read fame:write";
        self.cli(
            &["admin", "create", "--email", OPERATOR.0],
            Some(OPERATOR.1),
        )?;
        self.cli(&["user", "add", "--email", MEMBER.0], Some(MEMBER.1))?;
        for email in [OPERATOR.0, MEMBER.0] {
            let mut args = vec!["user", "grant", "--email", email];
            args.extend(everything.split(' '));
            self.cli(&args, None)?;
        }
        let target = self.cli(&["user", "add", "--email", TARGET.0], Some(TARGET.1))?;
        let organization = self.cli(
            &[
                "org",
                "add",
                "--name",
                "Contract University",
                "--domain",
                "contract.ac.kr",
            ],
            None,
        )?;
        let client = self.cli(&["client", "add", "--name", "contract stage"], None)?;
        let value = |text: &str, key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key))
                .map(str::to_owned)
                .with_context(|| format!("no `{key}` in: {text}"))
        };
        // "created user <id> <email>", "created organization <id> (…"
        let third_word = |text: &str| {
            text.split_whitespace()
                .nth(2)
                .map(str::to_owned)
                .with_context(|| format!("unexpected output: {text}"))
        };
        Ok(Ids {
            target_user: third_word(&target)?,
            organization: third_word(&organization)?,
            client_id: value(&client, "client_id=")?,
            client_secret: value(&client, "client_secret=")?,
        })
    }

    /// Serves in the background; returns once it prints its address.
    fn start(&self) -> Result<Running> {
        let log = fs::File::create(self.dir.join("server.log"))?;
        let mut child = self
            .command()
            .arg("serve")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .context("cannot start the server")?;
        let stdout = child.stdout.take().context("server: no stdout")?;
        let (sender, receiver) = std::sync::mpsc::channel();
        // Keeps reading, so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("listening on ") {
                    let _ = sender.send(url.trim().to_owned());
                }
            }
        });
        let started = Instant::now();
        match receiver.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => {
                println!("server at {url} (started in {:.1?})", started.elapsed());
                Ok(Running { child, url })
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "the server did not start within 60 s; see {}",
                    self.dir.join("server.log").display()
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_summary() {
        let text = "\
API Operations:
  Selected: 55/55
  Tested: 55

Test cases:
  2960 generated, 2 found 2 unique failures, 3 errored, 318 skipped

Seed: 1

================= 2 failures, 3 errors, 3 warnings in 28.83s ==================
";
        assert_eq!(
            figures(text),
            Figures {
                operations: 55,
                cases: 2960,
                failures: 2,
                errors: 3
            }
        );
        let clean = "  Tested: 55\n  2683 generated, 2683 passed\n=== 3 warnings in 31.93s ===\n";
        assert_eq!(
            figures(clean),
            Figures {
                operations: 55,
                cases: 2683,
                failures: 0,
                errors: 0
            }
        );
    }
}

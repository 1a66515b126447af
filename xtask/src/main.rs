//! Project chores, run as `cargo xtask <command>` (see `.cargo/config.toml`).
//!
//! - `cargo xtask ci`: installs what the tests need when missing (PostgreSQL, Chromium,
//!   fonts, openssl, axe-core from npm, a Schemathesis virtual environment), then fmt, clippy, the
//!   dependency-direction tidy check, all tests, and the Schemathesis contract stage.
//! - `cargo xtask bench [--seconds N] [--concurrency C] [--seed-users N] [--out PATH]`: the
//!   performance budget (docs/performance.md).
//! - `cargo xtask fuzz [--seconds N] [target…]`: bounded run of the cargo-fuzz targets.

mod bench;
mod ci;
mod contract;
mod fuzz;
mod provision;
mod tidy;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  ci                      installs what the tests need when missing (Debian packages:
                          PostgreSQL, chromium, chromium-driver, fonts-noto-cjk, openssl;
                          axe-core, pinned, with `npm ci` in xtask/axe; Schemathesis in a
                          virtual environment under the target folder),
                          then fmt, clippy, dependency-direction check, the full test suite
                          (PostgreSQL at $AUTH_TEST_DATABASE_URL) and the schemathesis
                          contract stage
  tidy                    the dependency-direction and source checks (ci step 4)
  contract                only the schemathesis contract stage (ci step 6)
  bench [options]         build the release server, measure it, print every figure of the
                          performance budget with its target (docs/performance.md)
      --seconds N         measuring time per load run (default 5)
      --concurrency C     connections of the throughput runs, and the PostgreSQL pool
                          size (default 32)
      --seed-users N      also measure on databases seeded with N users and N/10 revoked
                          sessions, and compare with the empty ones (e.g. 1000000)
      --no-postgres       skip PostgreSQL ($AUTH_TEST_DATABASE_URL, default
                          postgres://postgres@127.0.0.1:5432/test)
      --builtin-client    use the built-in load generator even if wrk is installed
      --layers            also price the server's middleware on /healthz (bare actix-web
                          handler + auth_http::Edge, its one layer)
      --out PATH          JSON report (default $CARGO_TARGET_DIR/bench/latest.json or
                          target/bench/latest.json; a markdown table goes next to it)
  fuzz [options] [target…] run each cargo-fuzz target in fuzz/ for a bounded time
      --seconds N         per target (default 60); installs cargo-fuzz if missing
  help                    show this message";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("\nerror: {error}");
            for cause in error.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        println!("{USAGE}");
        return Ok(());
    };
    match command.as_str() {
        "ci" => {
            if let Some(extra) = rest.first() {
                bail!("`ci` takes no arguments (got `{extra}`)\n\n{USAGE}");
            }
            ci::run()
        }
        "tidy" => ci::tidy(),
        "contract" => {
            let root = workspace_root();
            let summary = contract::run(&root, &target_dir(&root))?;
            println!("\n{summary}");
            Ok(())
        }
        "bench" => bench::run(parse_bench_args(rest)?),
        "fuzz" => fuzz::run(parse_fuzz_args(rest)?),
        "help" | "-h" | "--help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown command `{other}`\n\n{USAGE}"),
    }
}

fn parse_fuzz_args(args: &[String]) -> Result<fuzz::Options> {
    let mut options = fuzz::Options {
        seconds: 60,
        targets: Vec::new(),
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                let value = args
                    .next()
                    .with_context(|| format!("`--seconds` needs a value\n\n{USAGE}"))?;
                options.seconds = parse_positive(arg, value)?;
            }
            flag if flag.starts_with("--") => bail!("unknown fuzz option `{flag}`\n\n{USAGE}"),
            target => options.targets.push(target.to_owned()),
        }
    }
    Ok(options)
}

fn parse_bench_args(args: &[String]) -> Result<bench::Options> {
    let mut options = bench::Options {
        seconds: 5,
        concurrency: 32,
        out: None,
        seed_users: 0,
        no_postgres: false,
        builtin_client: false,
        layers: false,
    };
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .with_context(|| format!("`{flag}` needs a value\n\n{USAGE}"))
        };
        match flag.as_str() {
            "--seconds" => options.seconds = parse_positive(flag, value()?)?,
            "--concurrency" => options.concurrency = parse_positive(flag, value()?)? as usize,
            "--seed-users" => options.seed_users = parse_positive(flag, value()?)?,
            "--no-postgres" => options.no_postgres = true,
            "--builtin-client" => options.builtin_client = true,
            "--layers" => options.layers = true,
            "--out" => options.out = Some(PathBuf::from(value()?)),
            other => bail!("unknown bench option `{other}`\n\n{USAGE}"),
        }
    }
    Ok(options)
}

fn parse_positive(flag: &str, value: &str) -> Result<u64> {
    match value.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => bail!("`{flag}` needs a positive integer, got `{value}`"),
    }
}

/// The workspace root: the parent of this crate's directory.
///
/// Read at run time (`cargo run` sets `CARGO_MANIFEST_DIR`), never baked in
/// with `env!`: with a shared `CARGO_TARGET_DIR`, a binary built in another
/// checkout can be reused, and it must still work on *this* checkout.
pub fn workspace_root() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf());
    manifest_dir
        .parent()
        .expect("xtask lives inside the workspace")
        .to_path_buf()
}

/// The cargo binary that invoked us (`$CARGO`), or `cargo` from `PATH`.
pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

/// The cargo target directory: `$CARGO_TARGET_DIR` (made absolute) or `<root>/target`.
pub fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                // Cargo resolves a relative CARGO_TARGET_DIR against the invoking directory.
                std::env::current_dir().unwrap_or_default().join(dir)
            }
        }
        _ => root.join("target"),
    }
}

/// Runs a command with inherited stdio; errors (naming `what`) unless it exits successfully.
pub fn run_checked(what: &str, command: &mut Command) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("{what}: could not start {command:?}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

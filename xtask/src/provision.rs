//! What the test suite needs besides the Rust toolchain, installed when
//! missing so that `cargo xtask ci` alone works on a fresh machine: Debian
//! packages (PostgreSQL, Chromium and its WebDriver, CJK fonts, openssl),
//! axe-core for the pages' accessibility checks (npm, pinned by
//! `xtask/axe/package-lock.json`) and a Python virtual environment holding
//! the pinned Schemathesis.
//! Everything already present is left as it is; what can't be installed
//! stops the run with what to do about it.

use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The Schemathesis the contract stage runs (PyPI), pinned so that a new
/// release can't change the verdict of an unchanged tree.
pub const SCHEMATHESIS_VERSION: &str = "4.32.5";

fn found(command: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {command}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn quiet_success(command: &mut Command) -> bool {
    command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Installs Debian packages with apt-get (as root, non-interactively).
fn apt_install(packages: &[&str], why: &str) -> Result<()> {
    println!(
        "installing {} from Debian's packages ({why})",
        packages.join(" ")
    );
    let hint = || {
        format!(
            "could not install {0} ({why}); install them yourself, e.g. \
             `sudo apt-get install {0}`, and run again",
            packages.join(" ")
        )
    };
    if !found("apt-get") {
        bail!("{}: apt-get is not available here", hint());
    }
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
    };
    let updated = apt(&["update", "-qq"]).is_ok_and(|s| s.success());
    let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
    args.extend_from_slice(packages);
    match apt(&args) {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => bail!(
            "{} (apt-get {status}{})",
            hint(),
            if updated {
                ""
            } else {
                "; apt-get update failed too"
            }
        ),
        Err(e) => bail!("{}: {e}", hint()),
    }
}

/// wrk, the benchmark's load generator (Debian package `wrk`), installed
/// when missing. An error says why it could not be.
pub fn load_generator() -> Result<()> {
    if found("wrk") {
        return Ok(());
    }
    apt_install(&["wrk"], "the benchmark's load generator")
}

/// Everything the tests need on this machine.
pub fn test_tools(root: &Path, database_url: &str, default_url: &str) -> Result<()> {
    postgres(database_url, database_url == default_url)?;
    fault_test_tools()?;
    browser()?;
    axe_core(&root.join("xtask").join("axe"))?;
    Ok(())
}

/// A PostgreSQL server at the test URL: started if installed and stopped,
/// installed if absent (only for the default, local URL). For the default
/// URL the `test` database is created when missing.
fn postgres(url: &str, local_default: bool) -> Result<()> {
    let (host, port) = crate::ci::host_and_port(url)
        .with_context(|| format!("cannot parse the test database URL `{url}`"))?;
    let reachable = || {
        (host.as_str(), port)
            .to_socket_addrs()
            .map(|addrs| {
                addrs
                    .into_iter()
                    .any(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(3)).is_ok())
            })
            .unwrap_or(false)
    };
    if !reachable() {
        if !local_default {
            bail!(
                "nothing accepts connections at {host}:{port} (AUTH_TEST_DATABASE_URL); \
                 start that PostgreSQL server, or unset the variable to use a local one"
            );
        }
        if !found("pg_ctlcluster") {
            apt_install(&["postgresql"], "the PostgreSQL test suite")?;
        }
        println!("starting the local PostgreSQL cluster(s)");
        for version in std::fs::read_dir("/etc/postgresql")
            .context("PostgreSQL is installed but /etc/postgresql has no cluster")?
            .flatten()
        {
            let version = version.file_name().to_string_lossy().into_owned();
            let _ = quiet_success(Command::new("pg_ctlcluster").args([
                "--skip-systemctl-redirect",
                &version,
                "main",
                "start",
            ]));
        }
        let started = Instant::now();
        while !reachable() && started.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(500));
        }
        if !reachable() {
            bail!(
                "PostgreSQL does not accept connections at {host}:{port} after starting it; \
                 the PostgreSQL suite cannot run (see /var/log/postgresql/)"
            );
        }
    }
    println!("PostgreSQL accepts connections at {host}:{port}");
    if local_default {
        // Trust auth as the postgres user, with a `test` database to connect to.
        let psql = |sql: &str| {
            Command::new("psql")
                .args(["-h", &host, "-p", &port.to_string(), "-U", "postgres"])
                .args(["-d", "postgres", "-Atqc", sql])
                .output()
        };
        let exists = psql("SELECT 1 FROM pg_database WHERE datname = 'test'")
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "1")
            .unwrap_or(false);
        if !exists {
            let created = psql("CREATE DATABASE test").is_ok_and(|o| o.status.success());
            if !created {
                bail!("cannot create the database `test` as user postgres at {host}:{port}");
            }
        }
    }
    Ok(())
}

/// openssl makes throwaway TLS certificates; PostgreSQL's own `initdb` and
/// `pg_ctl` run the private cluster the fault test stops and starts.
fn fault_test_tools() -> Result<()> {
    let mut missing = Vec::new();
    if !found("openssl") {
        missing.push("openssl");
    }
    if !has_initdb() {
        missing.push("postgresql");
    }
    if !missing.is_empty() {
        apt_install(&missing, "the fault tests")?;
    }
    if !found("openssl") {
        bail!("openssl is still missing after installing it");
    }
    if !has_initdb() {
        bail!("PostgreSQL's initdb is still missing (package postgresql)");
    }
    Ok(())
}

fn has_initdb() -> bool {
    std::fs::read_dir("/usr/lib/postgresql")
        .map(|versions| {
            versions
                .flatten()
                .any(|v| v.path().join("bin/initdb").is_file())
        })
        .unwrap_or(false)
}

/// Debian's Chromium and its WebDriver for the page tests (never a browser
/// a test tool downloads), and Korean glyphs for the screenshots they save.
fn browser() -> Result<()> {
    let mut missing = Vec::new();
    if !found("chromium") {
        missing.push("chromium");
    }
    if !found("chromedriver") {
        missing.push("chromium-driver");
    }
    if !missing.is_empty() {
        apt_install(&missing, "the browser tests")?;
    }
    for (command, package) in [
        ("chromium", "chromium"),
        ("chromedriver", "chromium-driver"),
    ] {
        if !found(command) {
            bail!("{command} is still missing after installing {package}");
        }
    }
    let has_cjk_font = Command::new("fc-list")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .to_lowercase()
                .contains("noto sans cjk")
        })
        .unwrap_or(false);
    if !has_cjk_font && let Err(e) = apt_install(&["fonts-noto-cjk"], "Korean screenshots") {
        // The tests pass without it; the pictures would show empty boxes.
        println!("warning: {e}");
    }
    Ok(())
}

/// The `version` field of an npm `package.json`.
fn package_version(manifest: &Path) -> Option<String> {
    let text = std::fs::read_to_string(manifest).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["version"].as_str().map(str::to_owned)
}

/// axe-core, the accessibility rules the browser tests run in every page
/// they visit, from the npm registry into `xtask/axe/node_modules`
/// (git-ignored) with `npm ci`: exactly the version and integrity hash in
/// `xtask/axe/package-lock.json`. Reused when that version is installed.
fn axe_core(dir: &Path) -> Result<()> {
    let lock = std::fs::read_to_string(dir.join("package-lock.json"))
        .with_context(|| format!("cannot read {}/package-lock.json", dir.display()))?;
    let lock: serde_json::Value = serde_json::from_str(&lock)
        .with_context(|| format!("{}/package-lock.json is not JSON", dir.display()))?;
    let pinned = lock["packages"]["node_modules/axe-core"]["version"]
        .as_str()
        .context("xtask/axe/package-lock.json pins no axe-core version")?
        .to_owned();
    let installed = dir.join("node_modules").join("axe-core");
    if package_version(&installed.join("package.json")).as_deref() == Some(pinned.as_str())
        && installed.join("axe.min.js").is_file()
    {
        println!("axe-core {pinned}: {}", installed.display());
        return Ok(());
    }
    if !found("npm") {
        apt_install(&["npm"], "installing axe-core for the browser tests")?;
    }
    println!(
        "installing axe-core {pinned} from the npm registry (npm ci in {})",
        dir.display()
    );
    crate::run_checked(
        "installing axe-core (npm ci in xtask/axe)",
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--ignore-scripts"])
            .current_dir(dir),
    )?;
    if package_version(&installed.join("package.json")).as_deref() != Some(pinned.as_str()) {
        bail!(
            "npm ci did not install axe-core {pinned} into {}",
            installed.display()
        );
    }
    Ok(())
}

/// The virtual environment holding the pinned Schemathesis, under the
/// target folder: reused when it already has that version, else made anew.
/// Returns the `schemathesis` executable.
pub fn schemathesis(target: &Path) -> Result<PathBuf> {
    let venv = target.join(format!("schemathesis-{SCHEMATHESIS_VERSION}"));
    let executable = venv.join("bin").join("schemathesis");
    let installed = Command::new(&executable)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(SCHEMATHESIS_VERSION))
        .unwrap_or(false);
    if installed {
        println!("schemathesis {SCHEMATHESIS_VERSION}: {}", venv.display());
        return Ok(executable);
    }
    if !quiet_success(Command::new("python3").args(["-m", "venv", "--help"])) {
        apt_install(
            &["python3", "python3-venv"],
            "the contract tests' virtual environment",
        )?;
    }
    let _ = std::fs::remove_dir_all(&venv);
    println!(
        "creating {} with schemathesis {SCHEMATHESIS_VERSION} from PyPI",
        venv.display()
    );
    crate::run_checked(
        "creating the schemathesis virtual environment",
        Command::new("python3").arg("-m").arg("venv").arg(&venv),
    )?;
    crate::run_checked(
        "installing schemathesis into its virtual environment",
        Command::new(venv.join("bin").join("pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .arg(format!("schemathesis=={SCHEMATHESIS_VERSION}")),
    )?;
    if !quiet_success(Command::new(&executable).arg("--version")) {
        bail!("{} does not run after installing it", executable.display());
    }
    Ok(executable)
}

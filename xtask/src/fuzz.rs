//! `cargo xtask fuzz [--seconds N] [target…]`: a bounded run of every
//! `cargo fuzz` target in `fuzz/`, one after the other, with a summary of
//! executions and findings.
//!
//! cargo-fuzz needs nightly-only compiler flags; the machine has the stable
//! toolchain only, so the run sets `RUSTC_BOOTSTRAP=1` for the fuzz build
//! (never for the project's own builds). No sanitizer: the code under test is
//! safe Rust, and libFuzzer's crash and timeout detection is what we want.

use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::{cargo, workspace_root};

pub struct Options {
    pub seconds: u64,
    pub targets: Vec<String>,
}

struct Outcome {
    target: String,
    executions: u64,
    executions_per_second: u64,
    crashed: bool,
}

pub fn run(options: Options) -> Result<()> {
    let fuzz_dir = workspace_root().join("fuzz");
    ensure_cargo_fuzz()?;
    let targets = if options.targets.is_empty() {
        list_targets(&fuzz_dir)?
    } else {
        options.targets.clone()
    };
    let target_dir = std::env::var("CARGO_TARGET_DIR")
        .map(|dir| format!("{dir}-fuzz"))
        .unwrap_or_else(|_| fuzz_dir.join("target").to_string_lossy().into_owned());
    let mut outcomes = Vec::new();
    for target in &targets {
        println!(
            "==> fuzzing {target} for {} s (after its build)",
            options.seconds
        );
        let output = Command::new(cargo())
            .current_dir(&fuzz_dir)
            .env("RUSTC_BOOTSTRAP", "1")
            .args([
                "fuzz",
                "run",
                target,
                "--sanitizer",
                "none",
                "--target-dir",
                &target_dir,
            ])
            .args([
                "--",
                &format!("-max_total_time={}", options.seconds),
                "-print_final_stats=1",
            ])
            .stdout(Stdio::inherit())
            .stderr(Stdio::piped())
            .output()
            .with_context(|| format!("could not run cargo fuzz for {target}"))?;
        let log = String::from_utf8_lossy(&output.stderr);
        let crashed = !output.status.success();
        if crashed {
            eprintln!("{log}");
        }
        outcomes.push(Outcome {
            target: target.clone(),
            executions: final_stat(&log, "number_of_executed_units").unwrap_or(0),
            executions_per_second: final_stat(&log, "average_exec_per_sec").unwrap_or(0),
            crashed,
        });
    }
    println!(
        "\n{:<22} {:>14} {:>11}  result ({} s each)",
        "target", "executions", "exec/s", options.seconds
    );
    for o in &outcomes {
        println!(
            "{:<22} {:>14} {:>11}  {}",
            o.target,
            o.executions,
            o.executions_per_second,
            if o.crashed {
                "FOUND A CRASH (see fuzz/artifacts)"
            } else {
                "no findings"
            }
        );
    }
    let crashed: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.crashed)
        .map(|o| o.target.as_str())
        .collect();
    if !crashed.is_empty() {
        bail!("fuzzing found crashes in: {}", crashed.join(", "));
    }
    Ok(())
}

/// One of libFuzzer's final stats (`-print_final_stats=1`), e.g.
/// `stat::number_of_executed_units: 8130210`.
fn final_stat(log: &str, name: &str) -> Option<u64> {
    let prefix = format!("stat::{name}:");
    log.lines()
        .rev()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .and_then(|n| n.trim().parse().ok())
}

fn ensure_cargo_fuzz() -> Result<()> {
    let installed = Command::new(cargo())
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if installed {
        return Ok(());
    }
    println!("==> installing cargo-fuzz (cargo install cargo-fuzz --locked)");
    let status = Command::new(cargo())
        .args(["install", "cargo-fuzz", "--locked"])
        .status()
        .context("could not run cargo install")?;
    if !status.success() {
        bail!("cargo install cargo-fuzz failed ({status})");
    }
    Ok(())
}

fn list_targets(fuzz_dir: &std::path::Path) -> Result<Vec<String>> {
    let output = Command::new(cargo())
        .current_dir(fuzz_dir)
        .args(["fuzz", "list"])
        .output()
        .context("could not run cargo fuzz list")?;
    if !output.status.success() {
        bail!(
            "cargo fuzz list failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let targets: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    if targets.is_empty() {
        bail!("no fuzz targets in {}", fuzz_dir.display());
    }
    Ok(targets)
}

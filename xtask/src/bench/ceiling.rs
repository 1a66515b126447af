//! The database's own ceiling for the refresh path, measured by the
//! release `bench_floor --refresh-ceiling` (optimized code, like the server;
//! see that binary for what it runs). The server's refresh rate is reported
//! as a ratio of it.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde::Serialize;

use super::server::EMAIL;

/// Rotations per second with `batch` rotations per transaction, and the
/// time of one transaction (what each of its callers would wait).
#[derive(Clone, Debug, Serialize)]
pub struct Ceiling {
    pub batch: usize,
    pub per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// `batch` rotations per transaction of fresh sessions of the bench user,
/// for `seconds`, against the database at `url`.
pub fn refresh(floor: &Path, url: &str, batch: usize, seconds: u64) -> Result<Ceiling> {
    let output = Command::new(floor)
        .args(["--refresh-ceiling", url, "--email", EMAIL])
        .args([
            "--batch",
            &batch.to_string(),
            "--seconds",
            &seconds.to_string(),
        ])
        .output()
        .with_context(|| format!("running {}", floor.display()))?;
    if !output.status.success() {
        bail!(
            "refresh ceiling failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("ceiling "))
        .context("refresh ceiling: no result line")?;
    let numbers: Vec<f64> = line
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .context("refresh ceiling: unreadable result")?;
    let [_, per_sec, p50_ms, p99_ms] = numbers[..] else {
        bail!("refresh ceiling: unexpected result {line}");
    };
    Ok(Ceiling {
        batch,
        per_sec,
        p50_ms,
        p99_ms,
    })
}

//! `cargo xtask ci`: everything that must pass before merging, in order, stopping at the first
//! failure.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::{cargo, run_checked, workspace_root};

const DEFAULT_TEST_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Crates that must never be reachable from `auth-core` through normal/build dependencies:
/// it is the pure, I/O-free core.
const FORBIDDEN_IN_CORE: &[&str] = &[
    "diesel",
    "actix-web",
    "actix-rt",
    "tokio",
    "lettre",
    "r2d2",
    "reqwest",
    "libsqlite3-sys",
    "pq-sys",
];

pub fn run() -> Result<()> {
    let root = workspace_root();
    let target = crate::target_dir(&root);
    let started = Instant::now();

    step(
        1,
        "what the tests need: PostgreSQL, Chromium, fonts, openssl, axe-core",
    );
    let database_url = std::env::var("AUTH_TEST_DATABASE_URL")
        .unwrap_or_else(|_| DEFAULT_TEST_DATABASE_URL.to_string());
    crate::provision::test_tools(&root, &database_url, DEFAULT_TEST_DATABASE_URL)
        .context("ci step 1 (provisioning) failed")?;

    step(2, "cargo fmt --all -- --check");
    run_checked(
        "ci step 2 (rustfmt check)",
        cargo_in(&root).args(["fmt", "--all", "--", "--check"]),
    )?;

    step(3, "cargo clippy --workspace --all-targets -- -D warnings");
    run_checked(
        "ci step 3 (clippy)",
        cargo_in(&root).args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    )?;

    step(4, "tidy: dependency direction and source rules");
    check_dependency_direction(&root).context("ci step 4 (tidy: dependency direction) failed")?;
    crate::tidy::check_sources(&root).context("ci step 4 (tidy: source rules) failed")?;

    step(5, "cargo test --workspace --no-fail-fast");
    let summary = run_tests(&root)?;

    step(
        6,
        "contract: schemathesis against the server and its /openapi.json",
    );
    let contract = crate::contract::run(&root, &target).context("ci step 6 (contract) failed")?;

    println!();
    println!("==> ci passed in {:.0?}", started.elapsed());
    println!("    {summary}");
    println!("    {contract}");
    Ok(())
}

/// `cargo xtask tidy`: the dependency-direction and source checks (ci step 4).
pub fn tidy() -> Result<()> {
    let root = workspace_root();
    check_dependency_direction(&root).context("tidy: dependency direction failed")?;
    crate::tidy::check_sources(&root).context("tidy: source rules failed")?;
    println!("tidy: ok");
    Ok(())
}

fn step(number: u32, title: &str) {
    println!();
    println!("==> [ci {number}/6] {title}");
    let _ = std::io::stdout().flush();
}

fn cargo_in(root: &Path) -> Command {
    let mut command = Command::new(cargo());
    command.current_dir(root);
    command
}

// ---------------------------------------------------------------------------------------------
// Step 1: the test database's address

/// Extracts host and port from `scheme://[user[:password]@]host[:port][/db][?params]`.
pub(crate) fn host_and_port(url: &str) -> Option<(String, u16)> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);

    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        // IPv6 literal: [::1]:5432
        let (host, after) = bracketed.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    let host = if host.is_empty() { "localhost" } else { host };
    let port = match port {
        Some(port) if !port.is_empty() => port.parse().ok()?,
        _ => 5432,
    };
    Some((host.to_string(), port))
}

// ---------------------------------------------------------------------------------------------
// Step 4: dependency direction

fn check_dependency_direction(root: &Path) -> Result<()> {
    let output = cargo_in(root)
        .args(["metadata", "--format-version", "1"])
        .stderr(Stdio::inherit())
        .output()
        .context("could not run cargo metadata")?;
    if !output.status.success() {
        bail!("cargo metadata failed ({})", output.status);
    }
    let metadata: Value =
        serde_json::from_slice(&output.stdout).context("cargo metadata printed invalid JSON")?;

    let mut problems = Vec::new();
    check_core_closure(&metadata, &mut problems)?;
    check_crates_do_not_use_apps(&metadata, &mut problems)?;

    if !problems.is_empty() {
        for problem in &problems {
            eprintln!("tidy: {problem}");
        }
        bail!("{} dependency-direction violation(s)", problems.len());
    }
    Ok(())
}

/// `auth-core`'s non-dev (normal and build) dependency closure, without its
/// opt-in features, must not contain any I/O crate.
fn check_core_closure(metadata: &Value, problems: &mut Vec<String>) -> Result<()> {
    let packages = metadata["packages"]
        .as_array()
        .context("cargo metadata: no `packages`")?;
    let name_of: HashMap<&str, &str> = packages
        .iter()
        .filter_map(|p| Some((p["id"].as_str()?, p["name"].as_str()?)))
        .collect();
    let core = packages
        .iter()
        .find(|p| p["name"] == "auth-core")
        .context("cargo metadata: no package `auth-core`")?;
    let core_id = core["id"]
        .as_str()
        .context("cargo metadata: auth-core has no id")?;
    // Optional dependencies sit behind opt-in features (`remote`): the
    // default build, which is what must stay I/O-free, never has them. The
    // resolve graph unifies features across the workspace, so leave them
    // out here by name.
    let optional: BTreeSet<&str> = core["dependencies"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|dep| dep["optional"] == true)
        .filter_map(|dep| dep["name"].as_str())
        .collect();

    let nodes: HashMap<&str, &Value> = metadata["resolve"]["nodes"]
        .as_array()
        .context("cargo metadata: no `resolve.nodes`")?
        .iter()
        .filter_map(|node| Some((node["id"].as_str()?, node)))
        .collect();

    // Breadth-first walk, remembering how each package was reached to explain violations.
    let mut parent: HashMap<&str, &str> = HashMap::new();
    let mut seen = BTreeSet::from([core_id]);
    let mut queue = VecDeque::from([core_id]);
    while let Some(id) = queue.pop_front() {
        let Some(node) = nodes.get(id) else { continue };
        for dep in node["deps"].as_array().into_iter().flatten() {
            let is_non_dev = dep["dep_kinds"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|kind| kind["kind"] != "dev");
            let Some(dep_id) = dep["pkg"].as_str() else {
                continue;
            };
            let behind_a_feature = id == core_id
                && name_of
                    .get(dep_id)
                    .is_some_and(|name| optional.contains(name));
            if is_non_dev && !behind_a_feature && seen.insert(dep_id) {
                parent.insert(dep_id, id);
                queue.push_back(dep_id);
            }
        }
    }

    let mut closure_names: Vec<&str> = seen
        .iter()
        .filter_map(|id| name_of.get(id).copied())
        .collect();
    closure_names.sort_unstable();
    closure_names.dedup();
    println!(
        "auth-core: {} packages in its normal+build dependency closure; none may be one of: {}",
        closure_names.len(),
        FORBIDDEN_IN_CORE.join(", ")
    );

    for id in &seen {
        let name = name_of.get(id).copied().unwrap_or(id);
        if FORBIDDEN_IN_CORE.contains(&name) {
            // Rebuild the path auth-core -> ... -> name.
            let mut chain = vec![name];
            let mut current = *id;
            while let Some(&up) = parent.get(current) {
                chain.push(name_of.get(up).copied().unwrap_or(up));
                current = up;
            }
            chain.reverse();
            problems.push(format!(
                "auth-core must stay free of I/O crates but depends on `{name}` via {}",
                chain.join(" -> ")
            ));
        }
    }
    Ok(())
}

/// Library crates under `crates/` must never depend (in any way) on applications under `apps/`.
fn check_crates_do_not_use_apps(metadata: &Value, problems: &mut Vec<String>) -> Result<()> {
    let workspace_root = Path::new(
        metadata["workspace_root"]
            .as_str()
            .context("cargo metadata: no `workspace_root`")?,
    );
    let crates_dir = workspace_root.join("crates");
    let apps_dir = workspace_root.join("apps");
    let members: BTreeSet<&str> = metadata["workspace_members"]
        .as_array()
        .context("cargo metadata: no `workspace_members`")?
        .iter()
        .filter_map(Value::as_str)
        .collect();

    let mut checked = Vec::new();
    for package in metadata["packages"].as_array().into_iter().flatten() {
        let is_member = package["id"]
            .as_str()
            .is_some_and(|id| members.contains(id));
        let manifest = Path::new(package["manifest_path"].as_str().unwrap_or_default());
        if !is_member || !manifest.starts_with(&crates_dir) {
            continue;
        }
        let name = package["name"].as_str().unwrap_or("?");
        checked.push(name);
        for dep in package["dependencies"].as_array().into_iter().flatten() {
            if let Some(path) = dep["path"].as_str()
                && Path::new(path).starts_with(&apps_dir)
            {
                let kind = dep["kind"].as_str().unwrap_or("normal");
                problems.push(format!(
                    "crates/ must not depend on apps/: `{name}` has a {kind} dependency on `{}` ({path})",
                    dep["name"].as_str().unwrap_or("?"),
                ));
            }
        }
    }
    checked.sort_unstable();
    println!(
        "crates/ -> apps/: checked path dependencies of {} crate(s): {}",
        checked.len(),
        checked.join(", ")
    );
    if checked.is_empty() {
        bail!("found no workspace members under {}", crates_dir.display());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Step 5: tests

/// Runs the whole test suite, echoing its output while tallying the libtest result lines.
fn run_tests(root: &Path) -> Result<String> {
    let mut child = cargo_in(root)
        .args(["test", "--workspace", "--no-fail-fast"])
        .stdout(Stdio::piped())
        .spawn()
        .context("ci step 5 (tests): could not start cargo test")?;

    let mut tally = TestTally::default();
    let stdout = child.stdout.take().context("cargo test: no stdout")?;
    let mut out = std::io::stdout();
    for line in BufReader::new(stdout).lines() {
        let line = line.context("cargo test: reading output")?;
        let _ = writeln!(out, "{line}");
        tally.observe(&line);
    }
    let status = child.wait().context("cargo test: waiting")?;

    let summary = tally.summary();
    if !status.success() {
        bail!("ci step 5 (tests) failed ({status}): {summary}");
    }
    if tally.postgres == 0 {
        println!("warning: no `postgres::` tests ran - is the PostgreSQL suite wired up?");
    }
    Ok(summary)
}

#[derive(Default)]
struct TestTally {
    passed: u64,
    failed: u64,
    ignored: u64,
    sqlite: u64,
    postgres: u64,
}

impl TestTally {
    fn observe(&mut self, line: &str) {
        // Per-test lines: "test sqlite::users::create ... ok"
        if let Some(name) = line.strip_prefix("test ")
            && line.ends_with(" ... ok")
        {
            if name.starts_with("sqlite::") {
                self.sqlite += 1;
            } else if name.starts_with("postgres::") {
                self.postgres += 1;
            }
        }
        // Per-binary totals: "test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; ..."
        if let Some(rest) = line.strip_prefix("test result: ") {
            for part in rest.split(['.', ';']) {
                let mut words = part.split_whitespace();
                let (Some(count), Some(label)) = (words.next(), words.next()) else {
                    continue;
                };
                let Ok(count) = count.parse::<u64>() else {
                    continue;
                };
                match label {
                    "passed" => self.passed += count,
                    "failed" => self.failed += count,
                    "ignored" => self.ignored += count,
                    _ => {}
                }
            }
        }
    }

    fn summary(&self) -> String {
        format!(
            "tests: {} passed, {} failed, {} ignored (of the passed: {} sqlite::, {} postgres::)",
            self.passed, self.failed, self.ignored, self.sqlite, self.postgres
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_database_urls() {
        let cases = [
            (
                "postgres://postgres@127.0.0.1:5432/test",
                ("127.0.0.1", 5432),
            ),
            (
                "postgresql://u:p@db.example:6000/x?sslmode=disable",
                ("db.example", 6000),
            ),
            ("postgres://localhost/test", ("localhost", 5432)),
            ("postgres://u@[::1]:5433/test", ("::1", 5433)),
            ("postgres:///test", ("localhost", 5432)),
        ];
        for (url, (host, port)) in cases {
            assert_eq!(host_and_port(url), Some((host.to_string(), port)), "{url}");
        }
    }

    #[test]
    fn tallies_test_output() {
        let mut tally = TestTally::default();
        for line in [
            "test sqlite::users::create ... ok",
            "test postgres::users::create ... ok",
            "test postgres::users::other ... FAILED",
            "test result: FAILED. 2 passed; 1 failed; 3 ignored; 0 measured; 0 filtered out; finished in 0.1s",
        ] {
            tally.observe(line);
        }
        assert_eq!(
            (
                tally.passed,
                tally.failed,
                tally.ignored,
                tally.sqlite,
                tally.postgres
            ),
            (2, 1, 3, 1, 1)
        );
    }
}

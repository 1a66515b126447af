//! Does timing tell whether an account exists? For login, forgot-password,
//! signup and the organization email code, the same request is sent for a
//! known and an unknown address, interleaved one by one and alternating
//! which goes first (so drift and leftovers hit both sides alike), and the
//! medians compared. Status and body equality is
//! tested in the test suite; this is the timing half.

use std::process::Stdio;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::{Value, json};

use super::server::{EMAIL, Env, PASSWORD};

/// Requests per side and flow.
const SAMPLES: usize = 40;

/// Every limit off: the comparison needs the same answer each time, and a
/// throttle would (correctly) start refusing the repeated failures.
pub const NO_LIMITS: &[(&str, &str)] = &[
    ("AUTH_THROTTLE_LOGIN_ACCOUNT", "off"),
    ("AUTH_THROTTLE_LOGIN_IP", "off"),
    ("AUTH_THROTTLE_CODE_IP", "off"),
    ("AUTH_THROTTLE_MAIL_ADDRESS", "off"),
    ("AUTH_THROTTLE_MAIL_IP", "off"),
];

#[derive(Clone, Debug, Serialize)]
pub struct Gap {
    pub flow: &'static str,
    pub known_median_ms: f64,
    pub unknown_median_ms: f64,
}

impl Gap {
    pub fn difference_ms(&self) -> f64 {
        (self.known_median_ms - self.unknown_median_ms).abs()
    }

    /// What counts as "no signal": within 1 ms, or 5 % of the slower side
    /// (Argon2 flows take tens of milliseconds and vary by a few percent).
    pub fn allowance_ms(&self) -> f64 {
        (0.05 * self.known_median_ms.max(self.unknown_median_ms)).max(1.0)
    }
}

/// Measures on `env` (with [`NO_LIMITS`]) against its running server at `base`.
pub fn measure(env: &Env, base: &str) -> Result<Vec<Gap>> {
    let output = env
        .command()
        .args([
            "org",
            "add",
            "--name",
            "Bench School",
            "--domain",
            "example.com",
        ])
        .stdin(Stdio::null())
        .output()
        .context("auth-server org add")?;
    if !output.status.success() {
        bail!(
            "auth-server org add failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let organization = String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .nth(2)
        .context("org add printed no id")?
        .to_owned();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = reqwest::Client::new();
    let post = |path: String, body: Value, expected: u16| {
        let (client, url) = (client.clone(), format!("{base}{path}"));
        async move {
            let started = Instant::now();
            let response = client.post(&url).json(&body).send().await?;
            let status = response.status().as_u16();
            response.bytes().await?;
            if status != expected {
                bail!("POST {url}: expected {expected}, got {status}");
            }
            Ok::<f64, anyhow::Error>(started.elapsed().as_secs_f64() * 1000.0)
        }
    };
    let mut gaps = Vec::new();
    runtime.block_on(async {
        // The organization code has a resend cooldown per address, so its
        // known side needs one registered address per sample.
        for n in 0..SAMPLES {
            let body = json!({"email": format!("known-{n}@example.com"), "password": PASSWORD});
            post("/api/v1/auth/signup".into(), body, 201).await?;
        }
        // Let the outbox deliver the setup's mail before anything is timed.
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        type Body = Box<dyn Fn(&str) -> Value>;
        type Known = Box<dyn Fn(usize) -> String>;
        let bench_user: fn(usize) -> String = |_| EMAIL.to_owned();
        let flows: [(&'static str, String, u16, Body, Known); 4] = [
            (
                "login (wrong password)",
                "/api/v1/auth/login".into(),
                401,
                Box::new(|email| json!({"login": email, "password": "not the password"})),
                Box::new(bench_user),
            ),
            (
                "forgot password",
                "/api/v1/auth/password/forgot".into(),
                202,
                Box::new(|email| json!({ "email": email })),
                Box::new(bench_user),
            ),
            (
                "signup",
                "/api/v1/auth/signup".into(),
                201,
                Box::new(|email| json!({"email": email, "password": PASSWORD})),
                Box::new(bench_user),
            ),
            (
                "organization email code",
                format!("/api/v1/organizations/{organization}/email-verification"),
                202,
                Box::new(|email| json!({ "email": email })),
                Box::new(|n| format!("known-{n}@example.com")),
            ),
        ];
        for (index, (flow, path, expected, body, known_address)) in flows.into_iter().enumerate() {
            let (mut known, mut unknown) = (Vec::new(), Vec::new());
            for n in 0..SAMPLES {
                // Unknown addresses are fresh each time: a signup with one
                // creates the account, so it must never be reused.
                let ghost = format!("ghost-{index}-{n}@example.com");
                // Alternate which side goes first, so whatever the previous
                // request leaves behind (a mail being sent, an audit row
                // being written) falls on both sides alike.
                let known_body = body(&known_address(n));
                if n % 2 == 0 {
                    known.push(post(path.clone(), known_body, expected).await?);
                    unknown.push(post(path.clone(), body(&ghost), expected).await?);
                } else {
                    unknown.push(post(path.clone(), body(&ghost), expected).await?);
                    known.push(post(path.clone(), known_body, expected).await?);
                }
            }
            let gap = Gap {
                flow,
                known_median_ms: median(&mut known),
                unknown_median_ms: median(&mut unknown),
            };
            println!(
                "{flow:<26} known {:>7.2} ms   unknown {:>7.2} ms   |Δ| {:>6.2} ms (allowed {:.2})",
                gap.known_median_ms,
                gap.unknown_median_ms,
                gap.difference_ms(),
                gap.allowance_ms()
            );
            gaps.push(gap);
        }
        Ok::<(), anyhow::Error>(())
    })?;
    Ok(gaps)
}

fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// A fresh SQLite database and server with every limit off, then [`measure`].
pub fn run(binary: &std::path::Path) -> Result<Vec<Gap>> {
    let env = Env::create(binary, storage::Backend::Sqlite, NO_LIMITS)?;
    let server = env.start(&[])?;
    measure(&env, &server.base_url)
}

//! A headless Chromium driven over W3C WebDriver (Debian's `chromium` and
//! `chromium-driver`; `.ci/run` installs them). The few commands the page
//! tests need are plain JSON over HTTP, sent with the reqwest client the
//! tests already use: a WebDriver crate would add its own TLS stack and a
//! second copy of several dependencies for what is a dozen requests.
//!
//! Every page visited can be saved as a screenshot under
//! `target/tmp/screenshots/<test>/` for a person to review (not committed),
//! and every screenshot first checks the page with axe-core (WCAG 2.1 A and
//! AA plus Deque's best practices): one violation fails the test. axe-core
//! is the npm package pinned in `xtask/axe/package-lock.json`, installed by
//! `cargo xtask ci` (`npm ci --prefix xtask/axe`); it is injected with
//! WebDriver's execute script, which the pages' CSP does not govern.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
const WAIT: Duration = Duration::from_secs(15);

pub struct Browser {
    http: reqwest::Client,
    session: String,
    driver: Child,
    profile: PathBuf,
    shots: PathBuf,
    shot: AtomicUsize,
    javascript: bool,
}

/// What the browser is started with.
pub struct Options {
    /// Off: the page must work without JavaScript.
    pub javascript: bool,
    /// `Accept-Language` the browser sends.
    pub languages: &'static str,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            javascript: true,
            languages: "ko-KR,ko",
        }
    }
}

fn binary(name: &str) -> String {
    for dir in ["/usr/bin", "/usr/local/bin"] {
        let path = format!("{dir}/{name}");
        if std::path::Path::new(&path).exists() {
            return path;
        }
    }
    panic!(
        "{name} is not installed: apt-get install chromium chromium-driver (`cargo xtask ci` installs them)"
    );
}

/// The rule sets axe runs: WCAG 2.0 and 2.1, levels A and AA, and best
/// practices.
const AXE_TAGS: [&str; 5] = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"];

/// `axe.min.js`, read once per test binary; panics with the command that
/// installs it when it is missing or not the pinned version.
fn axe_source() -> &'static str {
    static SOURCE: OnceLock<String> = OnceLock::new();
    SOURCE.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../xtask/axe");
        let install = "npm ci --prefix xtask/axe (`cargo xtask ci` installs it)";
        let lock: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join("package-lock.json"))
                .expect("xtask/axe/package-lock.json"),
        )
        .expect("xtask/axe/package-lock.json is JSON");
        let pinned = &lock["packages"]["node_modules/axe-core"]["version"];
        let package = dir.join("node_modules/axe-core");
        let installed = std::fs::read_to_string(package.join("package.json"))
            .ok()
            .and_then(|text| serde_json::from_str::<Value>(&text).ok())
            .map(|json| json["version"].clone());
        match installed {
            None => panic!("axe-core is not installed: {install}"),
            Some(version) if version != *pinned => {
                panic!("axe-core {version} is installed, {pinned} is pinned: {install}")
            }
            Some(_) => {}
        }
        std::fs::read_to_string(package.join("axe.min.js"))
            .unwrap_or_else(|e| panic!("axe-core's axe.min.js: {e}: {install}"))
    })
}

impl Browser {
    /// Starts chromedriver on a free port and a fresh headless Chromium
    /// profile. `test` names the screenshot folder. Stops first when
    /// axe-core is not installed.
    pub async fn start(test: &str, options: Options) -> Browser {
        axe_source();
        let port = super::free_port();
        // A process group of its own: Chromium and its helpers, started by
        // the driver, are in it too, so one signal ends them all — also
        // when a test panics before closing its session.
        let driver = Command::new(binary("chromedriver"))
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let ready = http.get(format!("{base}/status")).send().await;
            if let Ok(r) = ready
                && let Ok(body) = r.json::<Value>().await
                && body["value"]["ready"] == true
            {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromedriver did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = std::env::temp_dir().join(format!("chromium-{}", uuid::Uuid::new_v4()));
        let mut prefs = json!({"intl.accept_languages": options.languages});
        if !options.javascript {
            prefs["profile.managed_default_content_settings.javascript"] = json!(2);
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": binary("chromium"),
                // Background networking off: this machine's network is closed.
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-quic", "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync", "--window-size=1280,1000",
                         format!("--user-data-dir={}", profile.display())],
                "prefs": prefs,
            }
        }}});
        let created: Value = http
            .post(format!("{base}/session"))
            .json(&capabilities)
            .send()
            .await
            .expect("new WebDriver session")
            .json()
            .await
            .unwrap();
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session: {created}"))
            .to_owned();
        let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join("screenshots")
            .join(test);
        let _ = std::fs::remove_dir_all(&shots);
        std::fs::create_dir_all(&shots).unwrap();
        Browser {
            http,
            session: format!("{base}/session/{session}"),
            driver,
            profile,
            shots,
            shot: AtomicUsize::new(0),
            javascript: options.javascript,
        }
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.session));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("WebDriver answers");
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!(
            status.is_success(),
            "WebDriver {method} {path}: {status} {body}"
        );
        body["value"].clone()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.command(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> Value {
        self.command(reqwest::Method::GET, path, None).await
    }

    /// Gives the browser a platform authenticator (WebDriver's virtual
    /// authenticator, W3C WebAuthn §11): CTAP2, discoverable credentials,
    /// user verification that always succeeds, as a phone or laptop would
    /// after a fingerprint. Returns its id.
    pub async fn add_virtual_authenticator(&self) -> String {
        let id = self
            .post(
                "/webauthn/authenticator",
                json!({
                    "protocol": "ctap2",
                    "transport": "internal",
                    "hasResidentKey": true,
                    "hasUserVerification": true,
                    "isUserConsenting": true,
                    "isUserVerified": true,
                }),
            )
            .await;
        id.as_str().expect("an authenticator id").to_owned()
    }

    /// Whether the virtual authenticator `id` verifies its user (a
    /// fingerprint that matches, or not).
    pub async fn set_user_verified(&self, id: &str, verified: bool) {
        self.post(
            &format!("/webauthn/authenticator/{id}/uv"),
            json!({"isUserVerified": verified}),
        )
        .await;
    }

    /// The credentials the virtual authenticator `id` holds.
    pub async fn virtual_credentials(&self, id: &str) -> Vec<Value> {
        self.get(&format!("/webauthn/authenticator/{id}/credentials"))
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub async fn goto(&self, url: &str) {
        self.post("/url", json!({"url": url})).await;
    }

    pub async fn url(&self) -> String {
        self.get("/url")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The element, waiting for it to appear (pages load after clicks).
    async fn element(&self, css: &str) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let response = self
                .http
                .post(format!("{}/element", self.session))
                .json(&json!({"using": "css selector", "value": css}))
                .send()
                .await
                .expect("WebDriver answers");
            if response.status().is_success() {
                let body: Value = response.json().await.unwrap();
                return body["value"][ELEMENT].as_str().unwrap().to_owned();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no element {css} on {}",
                self.url().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `css` matches something.
    pub async fn wait_for(&self, css: &str) {
        self.element(css).await;
    }

    /// Whether `css` matches anything now (no waiting).
    pub async fn has(&self, css: &str) -> bool {
        let found = self
            .post("/elements", json!({"using": "css selector", "value": css}))
            .await;
        found.as_array().is_some_and(|a| !a.is_empty())
    }

    pub async fn fill(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.post(&format!("/element/{id}/clear"), json!({})).await;
        self.post(&format!("/element/{id}/value"), json!({"text": text}))
            .await;
    }

    pub async fn click(&self, css: &str) {
        let id = self.element(css).await;
        self.post(&format!("/element/{id}/click"), json!({})).await;
    }

    pub async fn text(&self, css: &str) -> String {
        let id = self.element(css).await;
        self.get(&format!("/element/{id}/text"))
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// A form control's current value.
    pub async fn value(&self, css: &str) -> String {
        let id = self.element(css).await;
        self.get(&format!("/element/{id}/property/value"))
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub async fn title(&self) -> String {
        self.get("/title")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Runs a script in the page and returns its result.
    pub async fn script(&self, script: &str) -> Value {
        self.post("/execute/sync", json!({"script": script, "args": []}))
            .await
    }

    /// Runs axe-core in the page and panics with every violation (rule,
    /// impact, what to do, the elements) unless there is none. `page` names
    /// the page in that message. `screenshot` calls it; call it yourself on
    /// a page you don't photograph.
    pub async fn check_accessibility(&self, page: &str) {
        if self.script("return typeof window.axe").await != json!("object") {
            // With the page's scripts off its timers never fire, though
            // WebDriver's scripts run: axe's zero-delay steps then run as
            // microtasks, and its timeouts (frames, assets) never expire.
            let timers = if self.javascript {
                ""
            } else {
                "window.setTimeout = function (f, ms, ...args) {
                     if (!(ms > 1)) Promise.resolve().then(() => f(...args));
                     return 0;
                 };
                 window.clearTimeout = function () {};"
            };
            self.script(&format!("{timers}\n{}\n;return true", axe_source()))
                .await;
        }
        let run = format!(
            "const done = arguments[arguments.length - 1];
             axe.run(document, {{runOnly: {{type: 'tag', values: {tags}}}, resultTypes: ['violations']}})
               .then(r => done({{violations: r.violations.map(v => ({{
                   id: v.id, impact: v.impact, help: v.help, url: v.helpUrl,
                   nodes: v.nodes.map(n => ({{target: n.target, html: n.html}}))}}))}}))
               .catch(e => done({{error: String(e)}}));",
            tags = json!(AXE_TAGS)
        );
        let result = self
            .post("/execute/async", json!({"script": run, "args": []}))
            .await;
        if let Some(error) = result["error"].as_str() {
            panic!("axe-core failed on {page}: {error}");
        }
        let violations = result["violations"].as_array().cloned().unwrap_or_default();
        if violations.is_empty() {
            return;
        }
        let mut report = format!(
            "{} accessibility violation(s) on {page} ({}):",
            violations.len(),
            self.url().await
        );
        for v in &violations {
            report.push_str(&format!(
                "\n- {} [{}] {} ({})",
                v["id"].as_str().unwrap_or("?"),
                v["impact"].as_str().unwrap_or("?"),
                v["help"].as_str().unwrap_or(""),
                v["url"].as_str().unwrap_or("")
            ));
            for node in v["nodes"].as_array().into_iter().flatten() {
                report.push_str(&format!("\n    at {} {}", node["target"], node["html"]));
            }
        }
        panic!("{report}");
    }

    pub async fn resize(&self, width: u32, height: u32) {
        self.post("/window/rect", json!({"width": width, "height": height}))
            .await;
    }

    /// Saves the page as `NN-label.png` for review, then checks it with
    /// axe-core (see `check_accessibility`).
    pub async fn screenshot(&self, label: &str) {
        let png = self.get("/screenshot").await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap_or_default())
            .expect("a PNG screenshot");
        let n = self.shot.fetch_add(1, Ordering::Relaxed) + 1;
        std::fs::write(self.shots.join(format!("{n:02}-{label}.png")), bytes).unwrap();
        self.check_accessibility(label).await;
    }

    pub async fn close(mut self) {
        let _ = self.http.delete(&self.session).send().await;
        self.stop_driver();
    }

    fn stop_driver(&mut self) {
        // SAFETY: kill(2) on the process group we made for the driver; no
        // memory is involved.
        unsafe {
            libc::kill(-(self.driver.id() as libc::pid_t), libc::SIGKILL);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A failed test still ends its browser: the driver's process group
        // holds Chromium too.
        self.stop_driver();
    }
}

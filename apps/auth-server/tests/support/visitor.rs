//! A browser of our own over plain HTTP, for page flows without Chromium:
//! keeps cookies by hand (reqwest's jar is a feature we don't build) and
//! the CSRF token of the last page it read.

use reqwest::StatusCode;
use reqwest::header::SET_COOKIE;

use super::{PASSWORD, TestApp};

#[derive(Default)]
pub struct Visitor {
    pub cookies: Vec<(String, String)>,
    pub csrf: String,
}

impl Visitor {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub fn keep(&mut self, response: &reqwest::Response) {
        for value in response.headers().get_all(SET_COOKIE) {
            let value = value.to_str().unwrap();
            let (pair, attributes) = value.split_once(';').unwrap_or((value, ""));
            let (name, content) = pair.split_once('=').unwrap();
            self.cookies.retain(|(k, _)| k != name);
            if !attributes.contains("Max-Age=0") {
                self.cookies.push((name.to_owned(), content.to_owned()));
            }
        }
    }

    /// GET `path` (under the app) or an absolute URL; redirects are not
    /// followed. Remembers the page's CSRF token.
    pub async fn get(&mut self, app: &TestApp, path: &str) -> (StatusCode, String) {
        let response = self.get_response(app, path).await;
        let status = response.status();
        let body = response.text().await.unwrap();
        if let Some(start) = body.find("name=\"csrf\" value=\"") {
            let rest = &body[start + 19..];
            self.csrf = rest[..rest.find('"').unwrap()].to_owned();
        }
        (status, body)
    }

    /// [`get`](Self::get), the response itself (for its headers).
    pub async fn get_response(&mut self, app: &TestApp, path: &str) -> reqwest::Response {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            app.url(path)
        };
        let response = app
            .http
            .get(url)
            .header("cookie", self.header())
            .send()
            .await
            .unwrap();
        self.keep(&response);
        response
    }

    pub async fn post(
        &mut self,
        app: &TestApp,
        path: &str,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        let response = app
            .http
            .post(app.url(path))
            .header("cookie", self.header())
            .form(form)
            .send()
            .await
            .unwrap();
        self.keep(&response);
        response
    }

    /// Signs in through the login page with [`PASSWORD`].
    pub async fn log_in(&mut self, app: &TestApp, login: &str) -> reqwest::Response {
        self.get(app, "/login").await;
        let csrf = self.csrf.clone();
        self.post(
            app,
            "/login",
            &[("csrf", &csrf), ("login", login), ("password", PASSWORD)],
        )
        .await
    }
}

//! The auth server as a library, so tests can start it in-process;
//! `main.rs` is the CLI around it. The server is composition: settings
//! (`config`), the account service and its background work, the HTTP
//! front-ends of `auth-http`, TLS, and the operator's commands (`cli`).

pub mod app;
pub mod audit_cli;
pub mod cli;
pub mod config;
pub mod logging;
pub mod tls;

pub use app::{Application, start};
pub use config::Settings;

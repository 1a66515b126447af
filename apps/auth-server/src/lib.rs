//! The auth server as a library, so tests (and embedders) can start it
//! in-process; `main.rs` is the CLI around it.

pub mod app;
pub mod audit_cli;
pub mod cli;
pub mod config;
pub mod http;
pub mod metrics;
pub mod profiles;
pub mod state;
pub mod telemetry;
pub mod tls;
pub mod token_cache;
pub mod web;

pub use app::{Application, start};
pub use config::Settings;

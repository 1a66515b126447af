//! HTTPS with rustls (ring provider only; see `telemetry::install_crypto_provider`).

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use anyhow::{Context, Result};
use rustls::ServerConfig;

pub fn server_config(cert_path: &Path, key_path: &Path) -> Result<ServerConfig> {
    let certs = rustls_pemfile::certs(&mut BufReader::new(
        File::open(cert_path)
            .with_context(|| format!("tls_cert: cannot open {}", cert_path.display()))?,
    ))
    .collect::<Result<Vec<_>, _>>()
    .with_context(|| {
        format!(
            "tls_cert: {} is not a PEM certificate chain",
            cert_path.display()
        )
    })?;
    let key = rustls_pemfile::private_key(&mut BufReader::new(
        File::open(key_path)
            .with_context(|| format!("tls_key: cannot open {}", key_path.display()))?,
    ))
    .with_context(|| format!("tls_key: {} is not a PEM private key", key_path.display()))?
    .with_context(|| format!("tls_key: no private key found in {}", key_path.display()))?;
    ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("tls_cert/tls_key do not form a usable certificate")
}

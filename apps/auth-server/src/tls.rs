//! HTTPS with rustls (ring provider only; see `telemetry::install_crypto_provider`).
//!
//! The certificate is served through a resolver that can swap it while
//! running: `SIGHUP` re-reads `tls_cert`/`tls_key`, so a renewed certificate
//! (e.g. from an ACME client) takes effect without dropping connections. A
//! reload that fails keeps the current certificate and says why in the log.

use std::fmt;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use anyhow::{Context, Result};
use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The certificate and key files, and what was last loaded from them.
pub struct ReloadableCertificate {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl fmt::Debug for ReloadableCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadableCertificate")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .finish_non_exhaustive()
    }
}

impl ReloadableCertificate {
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<ReloadableCertificate> {
        let current = certified_key(cert_path, key_path)?;
        Ok(ReloadableCertificate {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            current: RwLock::new(Arc::new(current)),
        })
    }

    /// Reads the files again; on any problem the current certificate stays.
    pub fn reload(&self) -> Result<()> {
        let fresh = certified_key(&self.cert_path, &self.key_path)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(fresh);
        Ok(())
    }
}

impl ResolvesServerCert for ReloadableCertificate {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

/// A server configuration serving `certificate`, whatever it holds at the
/// time of each handshake.
pub fn server_config(certificate: Arc<ReloadableCertificate>) -> ServerConfig {
    // actix adds the ALPN protocols (h2, http/1.1) itself.
    ServerConfig::builder()
        .with_no_client_auth()
        .with_cert_resolver(certificate)
}

/// Re-reads the certificate on every `SIGHUP`, forever.
pub async fn reload_on_sighup(certificate: Arc<ReloadableCertificate>) {
    let mut hangups = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signal) => signal,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; the TLS certificate will not be reloaded");
            return;
        }
    };
    while hangups.recv().await.is_some() {
        let certificate = certificate.clone();
        match tokio::task::spawn_blocking(move || certificate.reload()).await {
            Ok(Ok(())) => tracing::info!("TLS certificate reloaded"),
            Ok(Err(e)) => {
                tracing::error!(
                    error = format!("{e:#}"),
                    "TLS certificate not reloaded; serving the previous one"
                )
            }
            Err(_) => tracing::error!("TLS certificate reload panicked; serving the previous one"),
        }
    }
}

fn certified_key(cert_path: &Path, key_path: &Path) -> Result<CertifiedKey> {
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
    if certs.is_empty() {
        anyhow::bail!("tls_cert: no certificate found in {}", cert_path.display());
    }
    let key = rustls_pemfile::private_key(&mut BufReader::new(
        File::open(key_path)
            .with_context(|| format!("tls_key: cannot open {}", key_path.display()))?,
    ))
    .with_context(|| format!("tls_key: {} is not a PEM private key", key_path.display()))?
    .with_context(|| format!("tls_key: no private key found in {}", key_path.display()))?;
    let signing_key = rustls::crypto::ring::sign::any_supported_type(&key)
        .context("tls_key: unsupported private key type")?;
    let certified = CertifiedKey::new(certs, signing_key);
    certified
        .keys_match()
        .context("tls_cert/tls_key do not belong together")?;
    Ok(certified)
}

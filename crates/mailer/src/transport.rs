//! Sending one message: SMTP (pooled connections) or `.eml` files.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::Duration;

use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::header::{Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::AsyncSmtpTransportBuilder;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};

use crate::error::MailError;

/// How the SMTP connection is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plaintext: only for a relay on the same host or network, and tests.
    None,
    /// Plaintext greeting upgraded with STARTTLS, which is required (a server
    /// that doesn't offer it is an error, not a silent downgrade). Port 587.
    #[serde(rename = "starttls")]
    StartTls,
    /// TLS from the first byte ("SMTPS"). Port 465.
    Tls,
}

impl SmtpSecurity {
    /// The customary port for this mode.
    pub fn default_port(self) -> u16 {
        match self {
            SmtpSecurity::None => 25,
            SmtpSecurity::StartTls => 587,
            SmtpSecurity::Tls => 465,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SmtpSecurity::None => "none",
            SmtpSecurity::StartTls => "starttls",
            SmtpSecurity::Tls => "tls",
        }
    }
}

impl FromStr for SmtpSecurity {
    type Err = MailError;

    /// `none`, `starttls` or `tls` (any case).
    fn from_str(s: &str) -> Result<Self, MailError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(SmtpSecurity::None),
            "starttls" => Ok(SmtpSecurity::StartTls),
            "tls" => Ok(SmtpSecurity::Tls),
            other => Err(MailError::Config(format!(
                "unknown SMTP security {other:?} (expected none, starttls or tls)"
            ))),
        }
    }
}

impl fmt::Display for SmtpSecurity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where mail goes.
#[derive(Clone, Debug)]
pub enum TransportConfig {
    /// One `.eml` file per message in `dir` (created if missing): development
    /// without a mail server, and a way to read what would have been sent.
    File { dir: PathBuf },
    Smtp {
        host: String,
        port: u16,
        security: SmtpSecurity,
        username: Option<String>,
        /// Debug-prints as `[REDACTED]`.
        password: Option<SecretString>,
        /// Per SMTP command (connect, each reply).
        timeout: Duration,
    },
}

/// Sends mail through the configured transport. Cheap to share (`Arc`) across
/// tasks; SMTP connections are pooled and reused between messages.
pub struct Mailer {
    from: Mailbox,
    transport: Transport,
}

enum Transport {
    File(AsyncFileTransport<Tokio1Executor>),
    // Boxed: the builder is large and a Mailer is built once.
    Smtp(Box<Smtp>),
}

struct Smtp {
    /// lettre's pool spawns its maintenance task on the tokio runtime when
    /// the transport is built, so building waits for the first send (which
    /// runs on the runtime): `Mailer::new` can then be called from plain
    /// synchronous start-up code.
    builder: AsyncSmtpTransportBuilder,
    built: OnceLock<AsyncSmtpTransport<Tokio1Executor>>,
    /// `host:port (security)`, for error messages and Debug.
    endpoint: String,
}

/// Deliberately not derived: lettre's builder would print the credentials.
impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let transport = match &self.transport {
            Transport::File(_) => "file".to_owned(),
            Transport::Smtp(smtp) => format!("smtp {}", smtp.endpoint),
        };
        f.debug_struct("Mailer")
            .field("from", &self.from.to_string())
            .field("transport", &transport)
            .finish()
    }
}

/// Whether a bare address (no display name) is one this mailer can send to:
/// the last word on every recipient. `accounts::EmailAddress::parse` ends
/// with it, so no address is accepted at the edge and refused at delivery.
pub fn check_recipient(address: &str) -> Result<(), MailError> {
    if address.contains(['<', '>', '"', ' ']) {
        return Err(MailError::Address(format!(
            "{address:?}: not a bare address"
        )));
    }
    parse_mailbox(address).map(|_| ())
}

/// `Name <address>` or a bare address.
pub(crate) fn parse_mailbox(s: &str) -> Result<Mailbox, MailError> {
    s.trim()
        .parse::<Mailbox>()
        .map_err(|e| MailError::Address(format!("{s:?}: {e}")))
}

/// `X-Outbox-Id`: ties a received message to its outbox row (support
/// questions, tests, and spotting a duplicate delivery).
#[derive(Clone)]
struct XOutboxId(String);

impl Header for XOutboxId {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("X-Outbox-Id")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(s.trim().to_owned()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

impl Mailer {
    /// `from` is `"Auth Server <no-reply@example.com>"` or a bare address.
    /// No network I/O happens here: an unreachable SMTP server shows up at
    /// the first send (the outbox retries), not as a start-up failure.
    pub fn new(from: &str, config: TransportConfig) -> Result<Mailer, MailError> {
        let from = parse_mailbox(from)?;
        let transport = match config {
            TransportConfig::File { dir } => {
                std::fs::create_dir_all(&dir).map_err(|e| {
                    MailError::Config(format!("mail folder {}: {e}", dir.display()))
                })?;
                Transport::File(AsyncFileTransport::new(dir))
            }
            TransportConfig::Smtp {
                host,
                port,
                security,
                username,
                password,
                timeout,
            } => {
                let tls_error = |e: lettre::transport::smtp::Error| {
                    MailError::Config(format!("SMTP TLS for {host}: {e}"))
                };
                let builder = match security {
                    SmtpSecurity::None => {
                        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host)
                    }
                    SmtpSecurity::StartTls => {
                        AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&host)
                            .map_err(tls_error)?
                    }
                    SmtpSecurity::Tls => {
                        AsyncSmtpTransport::<Tokio1Executor>::relay(&host).map_err(tls_error)?
                    }
                }
                .port(port)
                .timeout(Some(timeout));
                let builder = match (username, password) {
                    (Some(user), password) => builder.credentials(Credentials::new(
                        user,
                        password
                            .map(|p| p.expose_secret().to_owned())
                            .unwrap_or_default(),
                    )),
                    (None, Some(_)) => {
                        return Err(MailError::Config(
                            "an SMTP password is set without a username".into(),
                        ));
                    }
                    (None, None) => builder,
                };
                Transport::Smtp(Box::new(Smtp {
                    builder,
                    built: OnceLock::new(),
                    endpoint: format!("{host}:{port} ({security})"),
                }))
            }
        };
        Ok(Mailer { from, transport })
    }

    /// Sends one multipart/alternative message (text + HTML) with a fresh
    /// Message-ID and the header `X-Outbox-Id: <outbox_id>`.
    pub async fn send(
        &self,
        to: &str,
        subject: &str,
        text: &str,
        html: &str,
        outbox_id: &str,
    ) -> Result<(), MailError> {
        let message = self.build(to, subject, text, html, outbox_id)?;
        match &self.transport {
            Transport::File(file) => file
                .send(message)
                .await
                .map(drop)
                .map_err(|e| MailError::Send(format!("mail folder: {e}"))),
            Transport::Smtp(smtp) => smtp
                .built
                .get_or_init(|| smtp.builder.clone().build())
                .send(message)
                .await
                .map(drop)
                .map_err(|e| MailError::Send(format!("SMTP {}: {e}", smtp.endpoint))),
        }
    }

    fn build(
        &self,
        to: &str,
        subject: &str,
        text: &str,
        html: &str,
        outbox_id: &str,
    ) -> Result<Message, MailError> {
        let to = parse_mailbox(to)?;
        // Anything else could smuggle header lines in.
        if outbox_id.is_empty()
            || outbox_id.len() > 200
            || !outbox_id.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(MailError::Build(format!(
                "outbox id {outbox_id:?} is not a header-safe token"
            )));
        }
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(crate::templates::one_line(subject))
            // None: lettre generates `<uuid@hostname>`.
            .message_id(None)
            .header(XOutboxId(outbox_id.to_owned()))
            // Quoted-printable rather than lettre's choice (base64 for
            // Korean): codes and links stay readable in the raw message, so
            // `grep` finds them in the file outbox and in mail logs.
            .multipart(
                MultiPart::alternative()
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_PLAIN)
                            .header(ContentTransferEncoding::QuotedPrintable)
                            .body(text.to_owned()),
                    )
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .header(ContentTransferEncoding::QuotedPrintable)
                            .body(html.to_owned()),
                    ),
            )
            .map_err(|e| MailError::Build(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_parses_from_config_strings() {
        assert_eq!("none".parse::<SmtpSecurity>().unwrap(), SmtpSecurity::None);
        assert_eq!(
            "StartTLS".parse::<SmtpSecurity>().unwrap(),
            SmtpSecurity::StartTls
        );
        assert_eq!(" tls ".parse::<SmtpSecurity>().unwrap(), SmtpSecurity::Tls);
        assert!(matches!(
            "ssl".parse::<SmtpSecurity>(),
            Err(MailError::Config(_))
        ));
        assert!(matches!(
            "".parse::<SmtpSecurity>(),
            Err(MailError::Config(_))
        ));
        for security in [
            SmtpSecurity::None,
            SmtpSecurity::StartTls,
            SmtpSecurity::Tls,
        ] {
            assert_eq!(security.as_str().parse::<SmtpSecurity>().unwrap(), security);
        }
    }

    fn smtp(security: SmtpSecurity) -> TransportConfig {
        TransportConfig::Smtp {
            host: "smtp.example.com".into(),
            port: security.default_port(),
            security,
            username: Some("mailer".into()),
            password: Some(SecretString::from("hunter2-very-secret")),
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn debug_output_never_shows_the_password() {
        for security in [
            SmtpSecurity::None,
            SmtpSecurity::StartTls,
            SmtpSecurity::Tls,
        ] {
            let config = smtp(security);
            assert!(!format!("{config:?}").contains("hunter2"));
            let mailer = Mailer::new("Auth Server <no-reply@example.com>", config).unwrap();
            let debug = format!("{mailer:?}");
            assert!(!debug.contains("hunter2"), "{debug}");
            assert!(debug.contains("smtp.example.com"), "{debug}");
        }
    }

    #[test]
    fn mailer_is_shareable() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Mailer>();
    }

    #[test]
    fn bad_addresses_are_refused() {
        let dir = std::env::temp_dir().join(format!("mailer-test-{}", uuid::Uuid::new_v4()));
        let config = || TransportConfig::File { dir: dir.clone() };
        assert!(matches!(
            Mailer::new("not an address", config()),
            Err(MailError::Address(_))
        ));
        assert!(Mailer::new("no-reply@example.com", config()).is_ok());
        assert!(Mailer::new("Auth Server <no-reply@localhost>", config()).is_ok());
        let password_only = TransportConfig::Smtp {
            host: "localhost".into(),
            port: 25,
            security: SmtpSecurity::None,
            username: None,
            password: Some(SecretString::from("x")),
            timeout: Duration::from_secs(1),
        };
        assert!(matches!(
            Mailer::new("a@b.c", password_only),
            Err(MailError::Config(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

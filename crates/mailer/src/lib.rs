//! Outgoing mail for the auth server: what a mail says, how it is queued, and
//! how it leaves the machine.
//!
//! - [`locale`]: the two languages mail is written in (Korean first, English),
//!   chosen from a stored preference or an `Accept-Language` header;
//! - [`templates`]: every mail the server sends, rendered with minijinja from
//!   templates compiled into the binary (a text and an HTML body, and a
//!   subject, per locale), and [`templates::outbox_row`] to queue one;
//! - [`transport`]: [`Mailer`], which sends one multipart message over SMTP
//!   (plaintext, STARTTLS or implicit TLS; pooled connections) or writes it
//!   to a folder as an `.eml` file (development);
//! - [`outbox`]: [`OutboxWorker`], which delivers the queued mail.
//!
//! # Why an outbox
//!
//! Mail is never sent from a request handler. The row for a mail is written
//! in the same database transaction as the change that causes it (a code
//! issued, an account created), so either both happen or neither: no code
//! mailed for a signup that rolled back, and no signup whose code is lost
//! because the SMTP server was down at that moment. The worker then delivers
//! at least once: it claims a due row with a lease, sends it, and marks it
//! sent; a failed attempt is retried with exponential backoff, and after
//! `max_attempts` the row is marked dead (an operator can put it back with
//! `storage::repo::outbox::retry`). A worker that dies between sending and
//! marking lets the lease lapse and the mail goes out again, hence *at least*
//! once. Once sent, the bodies are cleared: they may carry codes and links
//! that must not outlive their purpose in the database.
//!
//! With the `test-support` feature, `test_smtp` provides a real SMTP server
//! on a local port for tests.

pub mod error;
pub mod locale;
pub mod outbox;
pub mod templates;
#[cfg(feature = "test-support")]
pub mod test_smtp;
pub mod transport;

pub use error::MailError;
pub use locale::Locale;
pub use outbox::{OutboxConfig, OutboxWorker};
pub use templates::{RenderedMail, Template, outbox_row, render};
pub use transport::{Mailer, SmtpSecurity, TransportConfig, check_recipient};

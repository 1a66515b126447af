//! The one error type of this crate.

/// What can go wrong while rendering, building, sending or queueing mail.
///
/// Messages never include the SMTP password: lettre's errors carry the
/// server's reply and the I/O cause, never the credentials, and our own
/// messages name only hosts, addresses and template names.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// A template failed to compile or render (a bug in the embedded templates).
    #[error("mail template: {0}")]
    Template(String),
    /// A sender or recipient that is not a valid mailbox.
    #[error("invalid mail address: {0}")]
    Address(String),
    /// The message could not be assembled (bad header value, …).
    #[error("cannot build the message: {0}")]
    Build(String),
    /// The transport configuration is unusable (unknown security mode, TLS
    /// parameters, output folder).
    #[error("mail transport configuration: {0}")]
    Config(String),
    /// The transport refused or failed to take the message (connection
    /// refused, SMTP error reply, file write failed).
    #[error("sending failed: {0}")]
    Send(String),
    #[error(transparent)]
    Storage(#[from] storage::StorageError),
    /// A blocking database task panicked or was cancelled.
    #[error("background task failed: {0}")]
    Task(String),
}

impl MailError {
    /// True when trying the same mail again cannot succeed: the worker marks
    /// such a mail dead at once instead of retrying it for hours.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Template(_) | Self::Address(_) | Self::Build(_))
    }
}

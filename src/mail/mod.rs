//! Email as keyward writes it: the messages, and the transport (SMTP, or a local file
//! outbox) they leave by. The worker that sends them and records each outcome in the log
//! is the application's (src/app/mailer.rs). Bodies live only in memory: they can carry an
//! API key.

mod messages;
mod transport;

use domain::change::Change;
use domain::email::Email;
use domain::mail::{self, MailKind};
use domain::{MailId, OrgId};
use zeroize::Zeroizing;

pub use messages::{agent_api_key, email_verification, enrollment_approval, share_accessed, share_invitation};
pub use transport::{Transport, TransportError, outbox_dir};

/// One email, its body kept only here.
pub struct Mail {
    pub id: MailId,
    /// The organization the email concerns, for the audit trail.
    pub org: Option<OrgId>,
    pub to: Email,
    pub kind: MailKind,
    pub subject: String,
    pub body: Zeroizing<String>,
}

impl Mail {
    pub fn new(to: Email, kind: MailKind, org: Option<OrgId>, subject: String, body: Zeroizing<String>) -> Self {
        Self {
            id: MailId::new(),
            org,
            to,
            kind,
            subject,
            body,
        }
    }

    /// The change that records this email as due; append it with its cause.
    pub fn queued(&self) -> Change {
        mail::queue(self.id, self.to.clone(), self.kind, self.subject.clone())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("invalid mail_from: {0}")]
    From(String),
}

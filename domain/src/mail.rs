//! Emails keyward sends: each is queued in the log together with the change that causes
//! it, and its outcome (sent, or failed after retries) is recorded beside it, so no email
//! disappears without a trace. Bodies are never in the log: they can carry an API key.

use serde::{Deserialize, Serialize};

use crate::change::{Change, stream};
use crate::email::Email;
use crate::event::ExpectedVersion;
use crate::events::{MailFailed, MailQueued, MailSent};
use crate::ids::MailId;
use crate::stream::StreamId;

/// Why an email is sent; the audit trail and the outbox name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailKind {
    /// Allow and Deny links for an agent's enrollment, to the human it named.
    EnrollmentApproval,
    /// An approved agent's API key, to the human who approved it.
    AgentApiKey,
    /// A share was accessed, to the human or agent who created it.
    ShareAccessed,
    /// A secret was shared with an email address, to that address.
    ShareInvitation,
    /// The token that proves an account's address, to that address.
    EmailVerification,
}

pub fn mail_stream(mail: MailId) -> StreamId {
    stream("mail", mail)
}

/// Records that `mail` is due, in the same append as the change that causes it.
pub fn queue(mail: MailId, to: Email, kind: MailKind, subject: String) -> Change {
    Change::new(
        mail_stream(mail),
        ExpectedVersion::NoStream,
        MailQueued {
            mail_id: mail,
            to,
            kind,
            subject,
        },
    )
}

pub fn sent(mail: MailId, attempts: u32) -> Change {
    Change::new(
        mail_stream(mail),
        ExpectedVersion::Exact(1),
        MailSent {
            mail_id: mail,
            attempts,
        },
    )
}

/// The email will not be sent: the transport kept refusing it, or keyward stopped first.
pub fn failed(mail: MailId, attempts: u32, error: String) -> Change {
    Change::new(
        mail_stream(mail),
        ExpectedVersion::Exact(1),
        MailFailed {
            mail_id: mail,
            attempts,
            error,
        },
    )
}

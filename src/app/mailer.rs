//! Sending email without making anyone wait for it.
//!
//! A use case appends [`Mail::queued`] together with the change that causes the email,
//! then hands the email to the [`Mailer`]. A worker sends it, retrying with back-off, and
//! appends its outcome: `mail.sent`, or `mail.failed` with the error (also logged). An
//! email queued by a keyward that stopped before sending it is marked failed by the sweep,
//! so every queued email ends in the log one way or the other.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use domain::change::Change;
use domain::mail;
use domain::{Metadata, OrgId};
use lettre::Message;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use tokio::sync::mpsc;

use super::commands::Commands;
use crate::config::Config;
use crate::mail::{Mail, MailError, Transport};
use crate::projector::Projector;

/// Waits between attempts: six attempts over about a minute.
const RETRY_DELAYS: [Duration; 5] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
    Duration::from_secs(16),
];
/// An email without an outcome this long after it was queued was lost: the keyward that
/// queued it stopped. Longer than all retries take, so emails in flight are never swept.
const LOST_AFTER: chrono::Duration = chrono::Duration::minutes(3);
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// The handle handlers send emails through.
#[derive(Clone)]
pub struct Mailer {
    queue: mpsc::UnboundedSender<Mail>,
}

impl Mailer {
    /// Starts the worker that sends queued emails and the sweep that records lost ones.
    pub fn start(config: &Config, commands: Commands, projector: Arc<Projector>) -> Result<Self, MailError> {
        let transport = Transport::from_config(config)?;
        let from: Mailbox = config.mail_from.parse().map_err(|e| MailError::From(format!("{e}")))?;
        tracing::info!(transport = %transport.describe(config), "mail");
        let (queue, mut queued) = mpsc::unbounded_channel::<Mail>();
        let worker = Worker {
            transport,
            from,
            commands,
        };
        let worker = Arc::new(worker);
        let sender = worker.clone();
        tokio::spawn(async move {
            while let Some(mail) = queued.recv().await {
                let worker = sender.clone();
                tokio::spawn(async move { worker.deliver(mail).await });
            }
        });
        tokio::spawn(async move {
            loop {
                worker.sweep_lost(&projector).await;
                tokio::time::sleep(SWEEP_EVERY).await;
            }
        });
        Ok(Self { queue })
    }

    /// Sends `mail`, whose [`Mail::queued`] change was appended. Returns at once.
    pub fn send(&self, mail: Mail) {
        crate::telemetry::mail_queued();
        if let Err(unsent) = self.queue.send(mail) {
            // Only when the worker is gone, at shutdown; the sweep of the next start
            // records the email as failed.
            tracing::error!(mail_id = %unsent.0.id, "the mail worker has stopped; email not sent");
        }
    }
}

struct Worker {
    transport: Transport,
    from: Mailbox,
    commands: Commands,
}

impl Worker {
    async fn deliver(&self, mail: Mail) {
        let outcome = match self.message(&mail) {
            Ok(message) => self.send_with_retries(&mail, message).await,
            Err(error) => Err((1, error)),
        };
        crate::telemetry::mail_finished(outcome.is_ok());
        let change = match outcome {
            Ok(attempts) => {
                tracing::info!(mail_id = %mail.id, kind = ?mail.kind, attempts, "email sent");
                mail::sent(mail.id, attempts)
            }
            Err((attempts, error)) => {
                tracing::error!(mail_id = %mail.id, kind = ?mail.kind, attempts, %error, "email not sent");
                mail::failed(mail.id, attempts, error)
            }
        };
        self.record(change, mail.org).await;
    }

    fn message(&self, mail: &Mail) -> Result<Message, String> {
        let to: Mailbox = mail.to.as_str().parse().map_err(|e| format!("recipient: {e}"))?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .body(mail.body.to_string())
            .map_err(|e| e.to_string())
    }

    async fn send_with_retries(&self, mail: &Mail, message: Message) -> Result<u32, (u32, String)> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.transport.send(message.clone()).await {
                Ok(()) => return Ok(attempts),
                Err(error) => match RETRY_DELAYS.get(attempts as usize - 1) {
                    Some(delay) => {
                        tracing::warn!(mail_id = %mail.id, attempts, %error, "email not sent yet; retrying");
                        tokio::time::sleep(*delay).await;
                    }
                    None => return Err((attempts, error)),
                },
            }
        }
    }

    /// Records emails that some keyward queued and never finished as failed.
    async fn sweep_lost(&self, projector: &Projector) {
        if let Err(error) = projector.catch_up().await {
            tracing::warn!(%error, "cannot read the log to sweep lost emails");
            return;
        }
        let cutoff = Utc::now() - LOST_AFTER;
        let lost: Vec<_> = projector.read(|models| {
            models
                .outbox
                .undelivered_before(cutoff)
                .into_iter()
                .map(|mail| (mail.id, mail.kind, mail.org))
                .collect()
        });
        for (id, kind, org) in lost {
            tracing::error!(mail_id = %id, ?kind, "email lost: keyward stopped before sending it");
            let change = mail::failed(id, 0, "keyward stopped before this email was sent".into());
            self.record(change, org).await;
        }
    }

    async fn record(&self, change: Change, org: Option<OrgId>) {
        let metadata = Metadata {
            org_id: org.map(|org| org.0),
            ..Metadata::system(Utc::now())
        };
        // A conflict means another replica recorded the outcome first: nothing is lost.
        if let Err(error) = self.commands.execute(vec![change], &metadata).await {
            tracing::warn!(%error, "cannot record an email's outcome");
        }
    }
}

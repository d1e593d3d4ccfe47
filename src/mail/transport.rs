//! Where emails go: the configured SMTP server, or `.eml` files in the outbox directory so
//! that keyward works with no mail server at all.

use std::path::PathBuf;

use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::{AsyncFileTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::Config;

#[derive(Clone)]
pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Outbox(AsyncFileTransport<Tokio1Executor>),
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("invalid smtp_url: {0}")]
    SmtpUrl(String),
    #[error("cannot create the mail outbox {path}: {source}")]
    Outbox { path: PathBuf, source: std::io::Error },
}

impl Transport {
    pub fn from_config(config: &Config) -> Result<Self, TransportError> {
        match &config.smtp_url {
            Some(url) => {
                let builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.as_str())
                    .map_err(|e| TransportError::SmtpUrl(e.to_string()))?;
                Ok(Transport::Smtp(builder.build()))
            }
            None => {
                let path = outbox_dir(config);
                create_private_dir(&path).map_err(|source| TransportError::Outbox {
                    path: path.clone(),
                    source,
                })?;
                Ok(Transport::Outbox(AsyncFileTransport::new(path)))
            }
        }
    }

    /// Where this transport delivers, for the start-up log line.
    pub fn describe(&self, config: &Config) -> String {
        match self {
            Transport::Smtp(_) => config
                .smtp_url
                .as_ref()
                .map(|url| format!("{url:?}"))
                .unwrap_or_default(),
            Transport::Outbox(_) => outbox_dir(config).display().to_string(),
        }
    }

    pub async fn send(&self, message: Message) -> Result<(), String> {
        match self {
            Transport::Smtp(smtp) => smtp.send(message).await.map(drop).map_err(|e| e.to_string()),
            Transport::Outbox(outbox) => outbox.send(message).await.map(drop).map_err(|e| e.to_string()),
        }
    }
}

pub fn outbox_dir(config: &Config) -> PathBuf {
    config.data_dir.join("outbox")
}

/// Emails can carry API keys: only keyward's own user may read the outbox.
fn create_private_dir(path: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

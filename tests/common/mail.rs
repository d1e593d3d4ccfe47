//! Reading the emails keyward sent: from the SMTP server `scripts/test` runs (a Maildir),
//! or from a server's `.eml` outbox.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The SMTP server of the test run, as keyward's `smtp_url`.
pub fn smtp_url() -> String {
    std::env::var("KEYWARD_TEST_SMTP_URL")
        .expect("KEYWARD_TEST_SMTP_URL names the test SMTP server (scripts/test starts one)")
}

/// Where the test SMTP server keeps what it receives.
pub fn smtp_maildir() -> PathBuf {
    std::env::var("KEYWARD_TEST_MAILDIR")
        .expect("KEYWARD_TEST_MAILDIR names the test SMTP server's Maildir (scripts/test starts one)")
        .into()
}

/// One received email: its headers and body as sent, unfolded.
#[derive(Debug, Clone)]
pub struct Email {
    pub raw: String,
}

impl Email {
    fn head_and_body(&self) -> (&str, &str) {
        self.raw
            .split_once("\r\n\r\n")
            .or_else(|| self.raw.split_once("\n\n"))
            .unwrap_or((&self.raw, ""))
    }

    /// A header's value, unfolded (long headers continue on lines that start with a space).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.head_and_body().0.replace("\r\n", "\n");
        let unfolded = head.replace("\n ", " ").replace("\n\t", " ");
        unfolded.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim().to_owned())
        })
    }

    /// The body, decoded from quoted-printable (which lettre picks for lines over 76
    /// characters, such as links).
    pub fn body(&self) -> String {
        let body = self.head_and_body().1;
        let quoted_printable = self
            .header("Content-Transfer-Encoding")
            .is_some_and(|encoding| encoding.eq_ignore_ascii_case("quoted-printable"));
        if quoted_printable {
            decode_quoted_printable(body)
        } else {
            body.to_owned()
        }
    }

    /// The first line of the body that starts with `label`, without it.
    pub fn line_after(&self, label: &str) -> Option<String> {
        self.body()
            .lines()
            .find_map(|line| line.trim().strip_prefix(label).map(|rest| rest.trim().to_owned()))
    }
}

fn decode_quoted_printable(text: &str) -> String {
    let joined = text.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'=' && i + 2 < bytes.len())
            .then(|| std::str::from_utf8(&bytes[i + 1..i + 3]).ok())
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                i += 3;
            }
            None => {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

fn emails_in(dir: &Path) -> Vec<Email> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            // A Maildir's tmp/ holds messages still being written; new/ gets them whole.
            if path.file_name().is_some_and(|name| name != "tmp") {
                found.extend(emails_in(&path));
            }
        } else if let Ok(raw) = std::fs::read_to_string(&path) {
            found.push(Email { raw });
        }
    }
    found
}

/// Every email in `dir` addressed to `to`.
pub fn emails_to(dir: &Path, to: &str) -> Vec<Email> {
    emails_in(dir)
        .into_iter()
        .filter(|email| email.header("To").is_some_and(|header| header.contains(to)))
        .collect()
}

/// Waits until an email to `to` whose subject contains `subject` is in `dir`. Delivery is
/// asynchronous by design: the request that causes an email never waits for it.
pub async fn wait_for(dir: &Path, to: &str, subject: &str) -> Email {
    for _ in 0..300 {
        if let Some(email) = emails_to(dir, to)
            .into_iter()
            .find(|email| email.header("Subject").is_some_and(|s| s.contains(subject)))
        {
            return email;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "no email to {to} with subject containing {subject:?} reached {} within 30 s",
        dir.display()
    );
}

/// Waits until exactly `count` emails to `to` with `subject` in their subject are in `dir`.
pub async fn wait_for_count(dir: &Path, to: &str, subject: &str, count: usize) -> Vec<Email> {
    let matching = || {
        emails_to(dir, to)
            .into_iter()
            .filter(|email| email.header("Subject").is_some_and(|s| s.contains(subject)))
            .collect::<Vec<_>>()
    };
    for _ in 0..300 {
        let found = matching();
        if found.len() == count {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{} emails to {to} with subject containing {subject:?}, not {count}",
        matching().len()
    );
}

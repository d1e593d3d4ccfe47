//! The words of keyward's emails. Plain text: every mail client shows it, and links in it
//! are followed to pages that ask before they change anything.

use domain::email::Email;
use domain::enrollment::Enrollment;
use domain::mail::MailKind;
use domain::{AgentId, OrgId, ShareId};
use zeroize::Zeroizing;

use super::Mail;

/// To the human an enrolling agent named: who asks, and where to allow or deny it.
pub fn enrollment_approval(to: Email, org: OrgId, enrollment: &Enrollment, page_url: &str) -> Mail {
    let name = &enrollment.settings.name;
    let description = enrollment
        .settings
        .description
        .as_deref()
        .map(|d| format!("Description: {d}\n"))
        .unwrap_or_default();
    let body = format!(
        "An AI agent asks to join your keyward organization.\n\n\
         Agent: {name}\n\
         {description}\
         Requested from: {ip}\n\
         Requested at: {at}\n\n\
         Allow: {page_url}&decision=allow\n\
         Deny: {page_url}&decision=deny\n\n\
         Both links open a page where you confirm; nothing changes until you do.\n\
         If approved, the agent starts with no access, and its API key is emailed to you.\n\
         If you did not expect this, deny it or let it expire in 24 hours.\n",
        ip = enrollment.requested_from,
        at = enrollment.requested_at.format("%Y-%m-%d %H:%M:%S UTC"),
    );
    Mail::new(
        to,
        MailKind::EnrollmentApproval,
        Some(org),
        format!("Approve agent \"{name}\"?"),
        Zeroizing::new(body),
    )
}

/// To the human who approved an agent: its API key, once.
pub fn agent_api_key(to: Email, org: OrgId, agent: AgentId, name: &str, api_key: &str) -> Mail {
    let body = format!(
        "You approved the agent \"{name}\" ({agent}).\n\n\
         Its API key:\n\n    {api_key}\n\n\
         Give it to the agent: it exchanges the key for short-lived tokens at\n\
         POST /v1/auth/agent-token. This is the only time keyward shows the key;\n\
         rotate it if it was exposed. The agent has no access until you grant it a policy.\n"
    );
    Mail::new(
        to,
        MailKind::AgentApiKey,
        Some(org),
        format!("API key for agent \"{name}\""),
        Zeroizing::new(body),
    )
}

/// To the address a new account was signed up with: the token that proves its holder
/// reads its mail, and the page that takes it.
pub fn email_verification(to: Email, org: OrgId, page_url: &str, token: &str) -> Mail {
    let body = format!(
        "Someone signed up for keyward with this address.\n\n\
         If it was you, confirm the address at\n\
         {page_url}\n\n\
         or send the token to POST /v1/auth/verify-email as {{\"token\": \"...\"}}:\n\n    {token}\n\n\
         The token works once, within 24 hours, and signs you in. Until the address is\n\
         confirmed, it grants nothing meant for whoever reads its mail.\n\
         If it was not you, ignore this email: nothing is done with the address.\n"
    );
    Mail::new(
        to,
        MailKind::EmailVerification,
        Some(org),
        "Confirm your email address for keyward".to_owned(),
        Zeroizing::new(body),
    )
}

/// To an email address a human shared a secret with: where to find it.
/// The link carries the claim token: whoever opens it signed in with this address makes
/// the share theirs alone.
pub fn share_invitation(
    to: Email,
    org: OrgId,
    sharer: &str,
    path: &str,
    expires_at: &str,
    signup_url: &str,
    claim_url: &str,
) -> Mail {
    let body = format!(
        "{sharer} shared a secret with you through keyward: {path}\n\n\
         Sign in (or sign up) with this address at {signup_url}, then open it, signed in, at\n\
         {claim_url}\n\
         (GET, with your token). That claims it for your account: it is then listed in your\n\
         inbound shares (GET /v1/shares/inbound) until {expires_at}. Keep this link to\n\
         yourself: it is what proves the share is yours.\n\
         If you did not expect this, ignore this email.\n"
    );
    Mail::new(
        to,
        MailKind::ShareInvitation,
        Some(org),
        format!("{sharer} shared a secret with you"),
        Zeroizing::new(body),
    )
}

/// To the sharer: their share was opened.
pub fn share_accessed(to: Email, org: OrgId, share: ShareId, path: &str, accessor: &str, count: &str) -> Mail {
    let body = format!(
        "Your share of {path} ({share}) was opened by {accessor}.\n\
         Accesses so far: {count}.\n\n\
         If this was not expected, revoke it: DELETE /v1/share/{share}.\n"
    );
    Mail::new(
        to,
        MailKind::ShareAccessed,
        Some(org),
        format!("Your share of {path} was opened"),
        Zeroizing::new(body),
    )
}

//! Platform administration granted from the server's command line: the operator's word,
//! recorded in the log, for an account whatever its address (docs/security.md).

use crate::change::Change;
use crate::email::Email;
use crate::event::ExpectedVersion;
use crate::events::{PlatformAdminGranted, PlatformAdminRevoked};
use crate::ids::UserId;
use crate::user::user_stream;

/// Makes the account `user`, which holds `email`, a platform administrator. Appended
/// whatever the stream's version: granting twice changes nothing.
pub fn grant(user: UserId, email: Email) -> Change {
    Change::new(
        user_stream(user),
        ExpectedVersion::Any,
        PlatformAdminGranted { user_id: user, email },
    )
}

pub fn revoke(user: UserId, email: Email) -> Change {
    Change::new(
        user_stream(user),
        ExpectedVersion::Any,
        PlatformAdminRevoked { user_id: user, email },
    )
}

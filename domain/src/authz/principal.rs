//! Who asks: a human user or an AI agent.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ids::{AgentId, UserId};

/// The kind of principal, `"user"` or `"agent"` on the wire (a policy's `principal_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalType {
    User,
    Agent,
}

impl PrincipalType {
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalType::User => "user",
            PrincipalType::Agent => "agent",
        }
    }
}

impl fmt::Display for PrincipalType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PrincipalType {
    type Err = PrincipalParseError;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw {
            "user" => Ok(PrincipalType::User),
            "agent" => Ok(PrincipalType::Agent),
            _ => Err(PrincipalParseError::UnknownType(raw.to_owned())),
        }
    }
}

/// A user or an agent. Serializes as the wire's pair of fields,
/// `{"principal_type": "agent", "principal_id": "<uuid>"}`, so it can be flattened into a
/// policy; displays as `agent:<uuid>`, the form of a JWT `sub`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Principal {
    #[serde(rename = "principal_type")]
    pub kind: PrincipalType,
    #[serde(rename = "principal_id")]
    pub id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrincipalParseError {
    #[error("principal type {0:?} is neither \"user\" nor \"agent\"")]
    UnknownType(String),
    #[error("principal {0:?} is not of the form <user|agent>:<uuid>")]
    Malformed(String),
}

impl Principal {
    pub fn user(id: UserId) -> Self {
        Self {
            kind: PrincipalType::User,
            id: id.0,
        }
    }

    pub fn agent(id: AgentId) -> Self {
        Self {
            kind: PrincipalType::Agent,
            id: id.0,
        }
    }

    pub fn is_user(&self) -> bool {
        self.kind == PrincipalType::User
    }

    pub fn is_agent(&self) -> bool {
        self.kind == PrincipalType::Agent
    }
}

impl From<UserId> for Principal {
    fn from(id: UserId) -> Self {
        Self::user(id)
    }
}

impl From<AgentId> for Principal {
    fn from(id: AgentId) -> Self {
        Self::agent(id)
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.id)
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Principal({self})")
    }
}

/// Parses `user:<uuid>` / `agent:<uuid>`.
impl FromStr for Principal {
    type Err = PrincipalParseError;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let (kind, id) = raw
            .split_once(':')
            .ok_or_else(|| PrincipalParseError::Malformed(raw.to_owned()))?;
        let kind = kind.parse()?;
        let id = Uuid::parse_str(id).map_err(|_| PrincipalParseError::Malformed(raw.to_owned()))?;
        Ok(Self { kind, id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "00000000-0000-0000-0000-00000000002a";

    #[test]
    fn principal_serializes_as_the_wire_fields() {
        let agent = Principal::agent(AgentId(Uuid::from_u128(42)));
        let json = serde_json::to_value(agent).unwrap();
        assert_eq!(json, serde_json::json!({"principal_type": "agent", "principal_id": ID}));
        assert_eq!(serde_json::from_value::<Principal>(json).unwrap(), agent);
    }

    #[test]
    fn principal_type_is_snake_case_on_the_wire() {
        assert_eq!(serde_json::to_string(&PrincipalType::User).unwrap(), "\"user\"");
        assert_eq!(
            serde_json::from_str::<PrincipalType>("\"agent\"").unwrap(),
            PrincipalType::Agent
        );
        assert!(serde_json::from_str::<PrincipalType>("\"Agent\"").is_err());
    }

    #[test]
    fn principal_displays_and_parses_as_a_subject() {
        let user = Principal::user(UserId(Uuid::from_u128(42)));
        assert_eq!(user.to_string(), format!("user:{ID}"));
        assert_eq!(format!("user:{ID}").parse::<Principal>(), Ok(user));
        assert!(user.is_user() && !user.is_agent());
    }

    #[test]
    fn malformed_subjects_are_rejected() {
        assert_eq!(
            format!("robot:{ID}").parse::<Principal>(),
            Err(PrincipalParseError::UnknownType("robot".into()))
        );
        assert_eq!(
            "agent".parse::<Principal>(),
            Err(PrincipalParseError::Malformed("agent".into()))
        );
        assert_eq!(
            "agent:42".parse::<Principal>(),
            Err(PrincipalParseError::Malformed("agent:42".into()))
        );
        assert_eq!(
            PrincipalParseError::Malformed("agent:42".into()).to_string(),
            "principal \"agent:42\" is not of the form <user|agent>:<uuid>"
        );
    }

    #[test]
    fn same_uuid_as_user_and_agent_are_different_principals() {
        let id = Uuid::from_u128(7);
        assert_ne!(Principal::user(UserId(id)), Principal::agent(AgentId(id)));
    }
}

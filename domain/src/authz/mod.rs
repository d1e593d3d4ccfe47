//! Authorization of secret access: path patterns, policies with their conditions, and the
//! pure decision that weighs a token, a vault and its policies against one request.

pub mod conditions;
pub mod decision;
pub mod pattern;
pub mod permission;
pub mod policy;
pub mod principal;

pub use conditions::{ConditionFailure, Conditions, ConditionsError, TimeWindow};
pub use decision::{AccessRequest, CurrentReach, Decision, Layer, ScopeCeiling, TokenScope, VaultFacts, authorize};
pub use pattern::{PathPattern, PathPatternError};
pub use permission::{Permission, Permissions, PermissionsError};
pub use policy::Policy;
pub use principal::{Principal, PrincipalParseError, PrincipalType};

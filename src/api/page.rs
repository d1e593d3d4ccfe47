//! The `limit` and `offset` of a list answered in pages, checked the same way everywhere.

use super::problem::ApiError;

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

#[derive(Debug, Clone, Copy)]
pub(super) struct Page {
    pub offset: usize,
    pub limit: usize,
}

impl Page {
    /// 100 from the start unless asked otherwise; a limit outside 1..=1000 is refused.
    pub fn of(limit: Option<usize>, offset: Option<usize>) -> Result<Self, ApiError> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(ApiError::BadRequest(format!("limit must be between 1 and {MAX_LIMIT}")));
        }
        Ok(Self {
            offset: offset.unwrap_or(0),
            limit,
        })
    }
}

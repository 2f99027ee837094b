//! The token's RNG (`C_GenerateRandom`) as an entropy source for the health monitor.

use super::pool::SessionPool;
use crate::Error;
use lemur_entropy::{EntropySource, SourceError};
use std::sync::Arc;

pub(super) struct TokenRng {
    pool: Arc<SessionPool>,
}

impl TokenRng {
    pub(super) fn new(pool: Arc<SessionPool>) -> Self {
        Self { pool }
    }
}

impl EntropySource for TokenRng {
    fn name(&self) -> &str {
        "hsm"
    }

    fn fill(&self, buf: &mut [u8]) -> Result<(), SourceError> {
        self.pool
            .run(|lease| lease.generate_random_slice(buf).map_err(Error::from))
            .map_err(|e| SourceError::new(e.to_string()))
    }
}

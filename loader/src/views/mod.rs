//! What operators look at: status and map views, the live trace, metrics.

pub mod inspect;
pub mod metrics;
pub mod trace;

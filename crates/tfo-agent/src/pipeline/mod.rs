//! The data path: collect → encode → queue → export. Each stage lives in one module.

pub mod collect;
pub mod export;
pub mod queue;

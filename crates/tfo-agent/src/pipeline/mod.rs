//! The data path: collect → encode → buffer → export. Each stage lives in one module.
//! The buffer is the disk log ([`disk`]) or, with `buffer.enabled: false`, the memory
//! queue ([`queue`]), behind one interface ([`buffer`]).

pub mod buffer;
pub mod collect;
pub mod disk;
pub mod export;
pub mod queue;

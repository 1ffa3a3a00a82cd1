//! Where the agent runs: container, virtual machine, cloud.
//!
//! Container and virtualization detection read files only (under a root path, so fixture
//! trees stand in for real hosts in tests) and run once. Cloud detection asks the instance
//! metadata services once at start, with short timeouts, using the virtualization
//! findings (DMI) to pick which service to ask.

pub mod cloud;
pub mod container;
pub mod virt;

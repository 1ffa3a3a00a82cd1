//! Slim copies of the API objects the collector reports on: deserialised straight from the
//! API server's JSON, keeping only the fields a metric, a resource attribute or an event
//! record reads. Everything else (managedFields, annotations, unused spec) is skipped by
//! the deserialiser, so it is never allocated.
pub mod event;

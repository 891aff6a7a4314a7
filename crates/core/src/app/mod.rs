//! The application: what the functions and the CLI do with the engine. Events in
//! ([`events`]), a pair's or a fleet's answer out ([`handler`], [`fleet`]), the probe, inspect,
//! the declaration's location, metrics and logging.

pub mod events;
pub mod fleet;
pub mod handler;
pub mod inspect;
pub mod location;
pub mod logging;
pub mod metrics;
pub mod probe;

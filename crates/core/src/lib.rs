//! Serverless cloud failover for network-appliance pairs on AWS.
//!
//! The flow reads top to bottom: an entry point (Lambda or CLI) hands an event to
//! [`handler`], which parses it ([`events`]), loads the [`declaration`] and calls
//! [`failover::run`]: [`discovery`] takes a snapshot, the pure [`plan`]ner decides,
//! the [`execute`]or mutates and verifies, and the [`state`] log records it all in S3; the
//! caller gets a typed [`answer`].
//! The cloud is reached only through the traits in [`ports`], implemented by [`aws`]
//! (the SDK) and, with the `testing` feature (tests and the developer tooling only),
//! `memory` (an in-memory cloud enforcing AWS's rules) with the `lab` topologies.

pub mod answer;
#[cfg(feature = "aws")]
pub mod aws;
pub mod budget;
#[cfg(test)]
mod cfe_tests;
pub mod clock;
pub mod declaration;
pub mod discovery;
pub mod doctor;
pub mod error;
pub mod events;
pub mod execute;
pub mod failover;
pub mod fleet;
pub mod handler;
pub mod inspect;
pub mod json;
pub mod keys;
#[cfg(any(test, feature = "testing"))]
pub mod lab;
pub mod location;
pub mod lock;
pub mod logging;
#[cfg(any(test, feature = "testing"))]
pub mod memory;
pub mod metrics;
pub mod model;
pub mod net;
pub mod pace;
pub mod plan;
pub mod ports;
pub mod probe;
pub mod request;
pub mod state;
#[cfg(test)]
pub(crate) mod testing;
pub mod text;

pub use answer::Answer;
pub use declaration::Declaration;
pub use error::{CloudError, ErrorKind};
pub use failover::FailoverError;

//! Serverless cloud failover for network-appliance pairs on AWS.
//!
//! Three layers, arrows only downward (`scripts/module-graph.py` checks):
//! - [`engine`]: what a failover is. The [`declaration`](engine::declaration), a
//!   [`discovery`](engine::discovery) snapshot, the pure [`plan`](engine::plan)ner, the
//!   [`execute`](engine::execute)or (paced, fenced by the [`lock`](engine::lock), verified),
//!   the [`state`](engine::state) log, and [`failover::run`](engine::failover::run) that ties
//!   them; the cloud only through the traits in [`ports`](engine::ports).
//! - [`app`]: what the entry points do with it: events in, a pair's or a fleet's typed answer
//!   out ([`handler`](app::handler), [`fleet`](app::fleet)), the probe, inspect.
//! - the adapters: [`aws`] (the SDK) and, with the `testing` feature (tests and the developer
//!   tooling only), `memory` (an in-memory cloud enforcing AWS's rules) with the `lab`
//!   topologies; and `ops` (the `ops` feature: `doctor`, for the CLI; the Lambdas do not
//!   link it).

pub mod app;
#[cfg(feature = "aws")]
pub mod aws;
#[cfg(test)]
mod cfe_tests;
pub mod engine;
#[cfg(test)]
mod group_tests;
#[cfg(any(test, feature = "testing"))]
pub mod lab;
#[cfg(any(test, feature = "testing"))]
pub mod memory;
#[cfg(any(test, feature = "ops"))]
pub mod ops;
#[cfg(test)]
mod profile_tests;
#[cfg(test)]
pub(crate) mod testing;

pub use app::fleet::{ClusterResult, Fleet, FleetReport};
pub use app::handler::{handle, handle_inspect, handle_probe, Invocation, Reply, Scope};
pub use app::location::{load_declaration, Location};
pub use engine::answer::Answer;
pub use engine::declaration::Declaration;
pub use engine::error::{CloudError, ErrorKind};
pub use engine::failover::FailoverError;

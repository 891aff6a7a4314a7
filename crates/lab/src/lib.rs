//! Developer tooling for cloud-failover, kept out of what ships (the Lambdas and the operator
//! CLI link none of it): a local moto server ([`emulator`]), the field report's topology built
//! through the SDK ([`builder`]), the local drill with its timeline and SVG ([`drill`]). The
//! `cf-lab` binary puts them on the command line; `failover-bench` measures the engine
//! against the in-memory cloud's simulated, throttled EC2.

pub mod builder;
pub mod drill;
pub mod emulator;
pub mod outage;
pub mod sim;

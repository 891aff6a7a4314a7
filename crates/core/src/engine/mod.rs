//! The engine: what a failover is, from a declaration to a verified, recorded run. Pure where
//! it can be (declaration, plan, picture); the cloud only through [`ports`]. Nothing here
//! knows events, fleets or entry points.

pub mod answer;
pub mod budget;
pub mod clock;
pub mod declaration;
pub mod discovery;
pub mod error;
pub mod execute;
pub mod failover;
pub mod json;
pub mod keys;
pub mod lock;
pub mod model;
pub mod net;
pub mod pace;
pub mod picture;
pub mod plan;
pub mod ports;
pub mod request;
pub mod state;
pub mod text;

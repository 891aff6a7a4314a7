//! End-to-end tests through the real AWS SDK against a moto server (one per test).
//! One test target on purpose: every test binary links the whole SDK again.

mod announce;
mod attempts;
mod cfe;
mod cli;
mod corpus;
mod doctor;
mod faults;
mod fleet;
mod groups;
mod iam;
mod init;
mod moto;
mod proxy;
mod seed;
mod storm;
mod support;
mod vpc;

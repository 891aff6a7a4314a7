//! What only operators run (the CLI links it, the Lambdas do not): `doctor`, and its check of
//! the ways to the APIs (`paths`).

pub mod doctor;
pub mod init;
pub mod paths;

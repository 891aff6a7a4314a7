//! What only operators run (the CLI links it, the Lambdas do not): `doctor`.

pub mod doctor;

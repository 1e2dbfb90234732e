//! Running as a service: what the relay's events say about its health, as `/healthz`,
//! `/readyz` and Prometheus `/metrics` on an admin listener, and as a stall to exit on.
//!
//! | module | what |
//! |---|---|
//! | [`monitor`] | per-source progress and the metrics, fed from [`crate::Event`]s and GitHub calls |
//! | [`admin`] | the HTTP listener that serves them |

mod admin;
mod metrics;
mod monitor;

pub use admin::{loopback_host, serve};
pub use monitor::{Monitor, NotReady};

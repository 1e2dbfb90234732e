//! `hookfwd`: forwards GitHub webhook deliveries to a local handler.
fn main() {}

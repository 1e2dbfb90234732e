//! The hookfwd engine: sources → poller → fetcher → forwarder → ledger.

//! The ledger: which deliveries of one hook have been forwarded, durable across crashes.

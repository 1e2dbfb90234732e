//! GitHub's webhook events on demand: an example payload for every event and action GitHub documents,
//! edits to a payload by path (`--set`), and checks of a payload against GitHub's schema for its event.
//!
//! The data comes from the npm packages `tests/receiver` pins (`@octokit/webhooks-examples` and
//! `@octokit/openapi`), extracted by `scripts/webhook-catalog.mjs` into the brotli-compressed files under
//! `data/`, which are embedded in the binary and decompressed on first use.

mod catalog;
mod edit;
mod error;
mod schema;

pub use catalog::{Example, Origin, Versions, actions, events, examples, find, lookup, versions};
pub use edit::{Edit, Edited, Missing, follow_repo};
pub use error::Error;
pub use schema::{Checker, FALSE_POSITIVES, FalsePositive, Problem, Report};

/// Decompresses one of the embedded data files.
fn inflate(compressed: &[u8]) -> String {
    let mut text = Vec::new();
    let mut reader = brotli_decompressor::Decompressor::new(compressed, 64 * 1024);
    // The files are compiled in and checked by this crate's tests: reading them cannot fail.
    std::io::Read::read_to_end(&mut reader, &mut text).expect("the embedded data decompresses");
    String::from_utf8(text).expect("the embedded data is UTF-8")
}

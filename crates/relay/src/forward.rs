//! The forwarder: rebuilds GitHub's request, signs it with the local secret, and POSTs it to the target.

use std::time::Duration;

use github::{Delivery, Secret};

use crate::Target;

/// One request for the target: GitHub's headers, the exact payload bytes, fresh signatures.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Header names and values, signatures included.
    pub headers: Vec<(String, String)>,
    /// The body exactly as sent: the payload bytes, or `payload=<urlencoded>` for form hooks.
    pub body: Vec<u8>,
}

impl Outgoing {
    /// Rebuilds the request GitHub sent for `delivery`, signed with `secret` when given
    /// (without one, GitHub's signature headers are dropped: they cannot verify).
    pub fn from_delivery(delivery: &Delivery, secret: Option<&Secret>) -> Self {
        let _ = (delivery, secret);
        todo!()
    }

    /// A synthetic delivery indistinguishable in form from GitHub's, for `hookfwd send`.
    pub fn synthetic(event: &str, payload: &[u8], secret: Option<&Secret>) -> Self {
        let _ = (event, payload, secret);
        todo!()
    }
}

/// How the target answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// From sending the request to the answer's headers.
    pub latency: Duration,
}

/// POSTs [`Outgoing`] requests to one target.
#[derive(Debug, Clone)]
pub struct Forwarder {}

impl Forwarder {
    /// A forwarder to `target`, giving up on one attempt after `timeout`.
    pub fn new(target: Target, timeout: Duration) -> Self {
        let _ = (target, timeout);
        todo!()
    }

    /// Sends one request once. `Err` carries a one-line reason (`connection refused`, `timed out`).
    pub async fn send(&self, request: &Outgoing) -> Result<Response, String> {
        let _ = request;
        todo!()
    }
}

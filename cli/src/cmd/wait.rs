//! `hookfwd wait`: forward like `dev` until a matching new delivery was handled, for CI against real GitHub.
//!
//! Every delivery is forwarded, matching or not (it is a relay); only a matching one ends the wait.
//! "New" means GitHub made it after the wait began (less a little clock skew), or within `--since`
//! when given, so that a ledger's backlog from an earlier run does not end the wait by accident.

use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};
use console::style;
use github::{DeliveryItem, HookRef};
use relay::Event;
use tokio::time::Instant;

use super::dev::{Until, flag_rule, run_rules};
use crate::args::{OutputArgs, WaitArgs};
use crate::exit::{FAILURE, REJECTED, TIMEOUT, fail};
use crate::json::{DeliveryFields, HookFields, Line};
use crate::term::{Status, print, visible};

/// How far GitHub's clock may be ahead of ours without a new delivery looking old.
const CLOCK_SKEW: Duration = Duration::from_secs(5);

/// Waits for a matching delivery.
pub async fn wait(args: WaitArgs, output: &OutputArgs, status: Status) -> anyhow::Result<ExitCode> {
    let rule = flag_rule(&args.sources, &args.app_filter, args.to, &args.relay, &args.github)?;
    let lookback = args.relay.since.unwrap_or(CLOCK_SKEW);
    let mut until = Match {
        event: args.event,
        action: args.action,
        after: relay::since::cutoff(Utc::now(), lookback),
        deadline: Instant::now() + args.give_up_after,
        timeout: args.give_up_after,
        json: output.json,
        quiet: output.quiet,
        failure: None,
    };
    run_rules(vec![rule], args.relay, None, &args.github, output, status, &mut until).await
}

/// Ends the run when a matching delivery has been answered.
struct Match {
    /// The event to wait for.
    event: String,
    /// The action to wait for, if any.
    action: Option<String>,
    /// Deliveries GitHub made before this are not new.
    after: DateTime<Utc>,
    /// When to give up.
    deadline: Instant,
    /// `--give-up-after`, for the message.
    timeout: Duration,
    /// `--json`.
    json: bool,
    /// `--quiet`.
    quiet: bool,
    /// The last way a matching delivery failed (a 5xx or an unreachable handler), still being retried.
    failure: Option<String>,
}

impl Match {
    fn kind(&self) -> String {
        match &self.action {
            Some(action) => format!("{}.{action}", self.event),
            None => self.event.clone(),
        }
    }

    fn matches(&self, item: &DeliveryItem) -> bool {
        item.event == self.event
            && self.action.as_ref().is_none_or(|action| item.action.as_ref() == Some(action))
            && item.delivered_at >= self.after
    }

    fn handled(&self, hook: &HookRef, item: &DeliveryItem, status: u16) -> anyhow::Result<ExitCode> {
        if self.json {
            let line = Line::Matched { hook: HookFields::of(hook), delivery: DeliveryFields::of(item), status };
            print(&line.to_json())?;
        } else if !self.quiet {
            print(&format!(
                "{} {} [{}] was handled ({status})",
                style("✓").green(),
                visible(&item.kind()),
                visible(&item.guid)
            ))?;
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl Until for Match {
    fn event(&mut self, event: &Event) -> Option<anyhow::Result<ExitCode>> {
        match event {
            // GitHub will never send it: waiting out the timeout would only hide why.
            Event::HookReady { hook, events, .. }
                if !events.is_empty() && !events.iter().any(|e| e == "*" || *e == self.event) =>
            {
                Some(Err(fail(
                    FAILURE,
                    format!(
                        "{hook} is not subscribed to {}, so GitHub never sends it; add it to the hook's events in its \
                         settings",
                        self.event
                    ),
                )))
            }
            Event::Answered { hook, item, status, answer, .. } if self.matches(item) => match status {
                200..=299 => Some(self.handled(hook, item, *status)),
                500.. => {
                    // The relay retries a 5xx: the wait goes on, and reports it if time runs out.
                    self.failure = Some(format!(
                        "the handler answered {status} to {} [{}]{}",
                        item.kind(),
                        item.guid,
                        crate::answer::gist(answer)
                    ));
                    None
                }
                _ => Some(Err(fail(
                    REJECTED,
                    format!(
                        "the handler rejected {} [{}] with {status}{}",
                        item.kind(),
                        item.guid,
                        crate::answer::gist(answer)
                    ),
                ))),
            },
            Event::Retrying { item, reason, .. } if self.matches(item) => {
                self.failure = Some(format!("{} [{}] could not be delivered: {reason}", item.kind(), item.guid));
                None
            }
            _ => None,
        }
    }

    fn deadline(&self) -> Option<Instant> {
        Some(self.deadline)
    }

    fn timed_out(&mut self) -> anyhow::Result<ExitCode> {
        let waited = humantime::format_duration(self.timeout);
        match &self.failure {
            Some(failure) => Err(fail(REJECTED, format!("{failure}, and it was not handled within {waited}"))),
            None => Err(fail(
                TIMEOUT,
                format!(
                    "no new {} delivery was handled within {waited}; check the hook's events with `hookfwd hooks list`",
                    self.kind()
                ),
            )),
        }
    }

    fn stopped(&mut self) -> anyhow::Result<ExitCode> {
        Err(fail(FAILURE, format!("stopped before a new {} delivery was handled", self.kind())))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn item(event: &str, action: Option<&str>, delivered_at: DateTime<Utc>) -> DeliveryItem {
        serde_json::from_value(json!({"id": 7, "guid": "g-1", "delivered_at": delivered_at, "redelivery": false,
            "duration": 0.1, "status": "OK", "status_code": 200, "event": event, "action": action}))
        .unwrap()
    }

    fn answered(item: DeliveryItem, status: u16) -> Event {
        Event::Answered {
            hook: HookRef::Repo { owner: "o".into(), repo: "r".into(), id: 1 },
            item,
            target: url::Url::parse("http://localhost:3000/").unwrap(),
            status,
            latency: Duration::from_millis(3),
            via: relay::Via::Api,
            answer: relay::Answer::default(),
            request: std::sync::Arc::new(relay::Outgoing::synthetic("issues", b"{}", None)),
        }
    }

    fn waiting(after: DateTime<Utc>) -> Match {
        Match {
            event: "issues".into(),
            action: Some("opened".into()),
            after,
            deadline: Instant::now(),
            timeout: Duration::from_secs(1),
            json: true,
            quiet: true,
            failure: None,
        }
    }

    fn code(result: anyhow::Result<ExitCode>) -> u8 {
        result.unwrap_err().downcast_ref::<crate::exit::Exit>().unwrap().code
    }

    #[test]
    fn only_a_new_delivery_of_the_event_and_action_ends_the_wait() {
        let now = Utc::now();
        let mut until = waiting(now);
        assert!(until.event(&answered(item("push", None, now), 200)).is_none());
        assert!(until.event(&answered(item("issues", Some("closed"), now), 200)).is_none());
        let old = now - chrono::TimeDelta::seconds(60);
        assert!(until.event(&answered(item("issues", Some("opened"), old), 200)).is_none());
        assert_eq!(code(until.timed_out()), TIMEOUT);
        assert!(until.event(&answered(item("issues", Some("opened"), now), 400)).is_some_and(|r| code(r) == REJECTED));
    }

    #[test]
    fn a_server_error_keeps_waiting_and_is_reported_at_the_timeout() {
        let now = Utc::now();
        let mut until = waiting(now);
        assert!(until.event(&answered(item("issues", Some("opened"), now), 503)).is_none());
        assert_eq!(code(until.timed_out()), REJECTED);
    }
}

//! The task that owns one source's [`State`]: the stream, the poller and the forwarder hold a
//! [`Handle`], send it messages and get answers (as mini-redis's per-connection handler owns its
//! connection). Nothing else touches the state, so no lock is shared between the stages.
//!
//! Three signals go the other way, as `watch` channels: something was queued (the forwarder
//! takes it), list now (the poller), and room for pushed bytes again (the stream).

use chrono::{DateTime, Utc};
use github::DeliveryItem;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::Error;
use crate::ledger::{Durable, Ledger};

use super::state::{How, PollPlan, PushOutcome, Pushed, Queued, State, Taken};

/// A message to the owner, with where its answer goes.
enum Ask {
    /// What a poll listed.
    Listed(Vec<DeliveryItem>, oneshot::Sender<Result<Queued, Error>>),
    /// Which of a page's deliveries are known already, and the floor.
    Known(Vec<DeliveryItem>, oneshot::Sender<(DateTime<Utc>, Vec<bool>)>),
    /// A pushed delivery whose signature verified.
    Pushed(Pushed, oneshot::Sender<PushOutcome>),
    /// A pushed delivery whose signature did not verify.
    Forged,
    /// The stream came up, resumed or fresh.
    StreamUp(bool),
    /// The stream dropped.
    StreamDown,
    /// The API must fill a gap: list now.
    Ring,
    /// What the poller should do next.
    Plan(oneshot::Sender<PollPlan>),
    /// The oldest waiting delivery.
    Take(oneshot::Sender<Option<Taken>>),
    /// Whether a taken delivery is still this process's to forward.
    Confirm(Taken, oneshot::Sender<bool>),
    /// Record a taken delivery as handled.
    Settle(Taken, How, oneshot::Sender<Result<Durable, Error>>),
    /// Un-park a delivery sent again and answered.
    Unpark(u64, String, oneshot::Sender<Result<Durable, Error>>),
    /// A poll succeeded.
    Checked,
    /// Deliveries queued or in flight.
    Backlog(oneshot::Sender<usize>),
}

/// How the stages reach a source's owner. Cheap to clone.
#[derive(Clone)]
pub(super) struct Handle {
    /// Messages to the owner.
    asks: mpsc::Sender<Ask>,
    /// Bumped whenever something was queued.
    pub(super) queued: watch::Receiver<u64>,
    /// Bumped whenever the poller should list at once.
    pub(super) poll_now: watch::Receiver<u64>,
    /// Whether another pushed delivery may be taken in.
    pub(super) room: watch::Receiver<bool>,
}

/// The owner's ends of the signals.
struct Signals {
    queued: watch::Sender<u64>,
    poll_now: watch::Sender<u64>,
    room: watch::Sender<bool>,
}

/// The owner stopped: every stage has stopped too, or will at its next message.
fn gone() -> Error {
    Error::TaskFailed("the source's owner task stopped".into())
}

impl Handle {
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Ask) -> Result<T, Error> {
        let (reply, answer) = oneshot::channel();
        self.asks.send(make(reply)).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())
    }

    async fn tell(&self, ask: Ask) {
        // An owner that is gone has nothing left to learn.
        let _ = self.asks.send(ask).await;
    }

    /// Hands over what a poll listed.
    pub(super) async fn listed(&self, items: Vec<DeliveryItem>) -> Result<Queued, Error> {
        self.ask(|reply| Ask::Listed(items, reply)).await?
    }

    /// Which of `items` are known already, and the floor.
    pub(super) async fn known(&self, items: Vec<DeliveryItem>) -> Result<(DateTime<Utc>, Vec<bool>), Error> {
        self.ask(|reply| Ask::Known(items, reply)).await
    }

    /// Hands over a pushed delivery whose signature verified.
    pub(super) async fn pushed(&self, pushed: Pushed) -> Result<PushOutcome, Error> {
        self.ask(|reply| Ask::Pushed(pushed, reply)).await
    }

    /// Counts a pushed delivery whose signature did not verify.
    pub(super) async fn forged(&self) {
        self.tell(Ask::Forged).await;
    }

    /// The stream is up; `resumed` without a gap.
    pub(super) async fn stream_up(&self, resumed: bool) {
        self.tell(Ask::StreamUp(resumed)).await;
    }

    /// The stream dropped.
    pub(super) async fn stream_down(&self) {
        self.tell(Ask::StreamDown).await;
    }

    /// Rings the doorbell: the poller lists at once.
    pub(super) async fn ring(&self) {
        self.tell(Ask::Ring).await;
    }

    /// What the poller should do next.
    pub(super) async fn plan(&self) -> Result<PollPlan, Error> {
        self.ask(Ask::Plan).await
    }

    /// Takes the oldest waiting delivery.
    pub(super) async fn take(&self) -> Result<Option<Taken>, Error> {
        self.ask(Ask::Take).await
    }

    /// Whether `taken` is still this process's to forward.
    pub(super) async fn confirm(&self, taken: Taken) -> Result<bool, Error> {
        self.ask(|reply| Ask::Confirm(taken, reply)).await
    }

    /// Records `taken` as handled; the promise says when it is on disk.
    pub(super) async fn settle(&self, taken: Taken, how: How) -> Result<Durable, Error> {
        self.ask(|reply| Ask::Settle(taken, how, reply)).await?
    }

    /// Un-parks a delivery sent again and answered.
    pub(super) async fn unpark(&self, id: u64, guid: String) -> Result<Durable, Error> {
        self.ask(|reply| Ask::Unpark(id, guid, reply)).await?
    }

    /// Notes a successful poll.
    pub(super) async fn checked(&self) {
        self.tell(Ask::Checked).await;
    }

    /// Deliveries queued or in flight.
    pub(super) async fn backlog(&self) -> Result<usize, Error> {
        self.ask(Ask::Backlog).await
    }
}

/// The owner of `state`, and the handle to reach it. The owner runs until every handle is gone,
/// then gives back the state (for closing its ledger) with the first ledger error it met, if any.
pub(super) fn spawn<L: Ledger>(
    state: State<L>,
) -> (Handle, impl std::future::Future<Output = (State<L>, Result<(), Error>)> + Send) {
    let (asks, inbox) = mpsc::channel(64);
    let (queued, queued_rx) = watch::channel(0);
    let (poll_now, poll_now_rx) = watch::channel(0);
    let (room, room_rx) = watch::channel(true);
    let handle = Handle { asks, queued: queued_rx, poll_now: poll_now_rx, room: room_rx };
    (handle, own(state, inbox, Signals { queued, poll_now, room }))
}

async fn own<L: Ledger>(
    mut state: State<L>,
    mut inbox: mpsc::Receiver<Ask>,
    signals: Signals,
) -> (State<L>, Result<(), Error>) {
    let mut failed = Ok(());
    let mut next_upkeep = state.ledger().maintain_every().map(|every| Instant::now() + every);
    loop {
        let upkeep = async {
            match next_upkeep {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let ask = tokio::select! {
            ask = inbox.recv() => ask,
            () = upkeep => {
                state.ledger().maintain().await;
                // Deliveries another replica let go of are taken over, polls or not.
                let result = state.top_up().await.map(|added| signal_queued(&signals, added));
                failed = failed.and(result);
                next_upkeep = state.ledger().maintain_every().map(|every| Instant::now() + every);
                continue;
            }
        };
        let Some(ask) = ask else { break };
        let backlog = state.backlog();
        handle(&mut state, ask, &signals, &mut failed).await;
        if state.backlog() > backlog {
            signal_queued(&signals, 1);
        }
        signals.room.send_if_modified(|room| std::mem::replace(room, state.has_room()) != *room);
    }
    (state, failed)
}

fn signal_queued(signals: &Signals, added: usize) {
    if added > 0 {
        signals.queued.send_modify(|n| *n += 1);
    }
}

async fn handle<L: Ledger>(state: &mut State<L>, ask: Ask, signals: &Signals, failed: &mut Result<(), Error>) {
    let ring = || signals.poll_now.send_modify(|n| *n += 1);
    match ask {
        Ask::Listed(items, reply) => {
            let _ = reply.send(state.listed(items, Instant::now()).await);
        }
        Ask::Known(items, reply) => {
            let known = items.iter().map(|item| state.knows(item)).collect();
            let _ = reply.send((state.floor(), known));
        }
        Ask::Pushed(pushed, reply) => {
            let outcome = state.pushed(pushed, Instant::now()).await;
            if outcome == PushOutcome::Repeat {
                ring();
            }
            let _ = reply.send(outcome);
        }
        Ask::Forged => state.refused.forged += 1,
        Ask::StreamUp(resumed) => {
            state.stream_up(resumed, Utc::now());
            if !resumed {
                // A fresh stream brings only what comes from now on: the API lists the rest at once.
                ring();
            }
        }
        Ask::StreamDown => {
            state.stream_down();
            ring();
        }
        Ask::Ring => {
            state.ring(Instant::now());
            ring();
        }
        Ask::Plan(reply) => {
            let _ = reply.send(state.plan(Instant::now()));
        }
        Ask::Take(reply) => {
            let _ = reply.send(state.take());
        }
        Ask::Confirm(taken, reply) => {
            let _ = reply.send(state.confirm(&taken).await);
        }
        Ask::Settle(taken, how, reply) => {
            let settled = state.settle(&taken, how).await;
            // Replicas claim more as the queue runs low.
            let topped = match &settled {
                Ok(_) => state.top_up().await.map(|_| ()),
                Err(_) => Ok(()),
            };
            if let Err(error) = topped
                && failed.is_ok()
            {
                *failed = Err(error);
            }
            let _ = reply.send(settled);
        }
        Ask::Unpark(id, guid, reply) => {
            let _ = reply.send(state.ledger().unpark(id, &guid));
        }
        Ask::Checked => {
            if let Err(error) = state.ledger().checked(Utc::now()).await
                && failed.is_ok()
            {
                *failed = Err(error);
            }
        }
        Ask::Backlog(reply) => {
            let _ = reply.send(state.backlog());
        }
    }
}

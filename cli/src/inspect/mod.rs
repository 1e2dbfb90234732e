//! The local inspector of `dev` and `forward`: a page at http://127.0.0.1:4040 that lists deliveries live,
//! shows each one's request and every answer, and replays, redelivers, copies and saves them.
//! `hookfwd mcp` keeps its deliveries in the same [`store`] and replays and redelivers through [`server`].

pub mod server;
pub mod store;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use relay::{Event, Rule};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};

use crate::args::InspectArgs;
use crate::exit::{USAGE, fail};
use server::{Shared, Signer};
use store::Change;

/// The port tried first, as ngrok's inspector has taught people to expect.
const DEFAULT_PORT: u16 = 4040;
/// How many ports after it are tried when it is taken.
const PORTS_TRIED: u16 = 20;

/// A running inspector; it stops serving when dropped.
pub struct Inspector {
    shared: Arc<Shared>,
    url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Inspector {
    /// Starts the inspector as `args` say: `None` with `--no-inspect`, or when no default port is free
    /// (said in a warning). An explicit `--inspect` address that is taken or not loopback is an error.
    ///
    /// `rules` give the local secrets edited replays are signed with; `press` is the run's retry key
    /// (the `r` key's), which Retry now and Send again press.
    pub async fn start(
        args: &InspectArgs,
        client: github::Client,
        rules: &[Rule],
        press: watch::Sender<u64>,
    ) -> anyhow::Result<Option<Self>> {
        if args.no_inspect {
            return Ok(None);
        }
        let listener = match args.inspect {
            Some(addr) => {
                if !addr.ip().is_loopback() {
                    return Err(fail(USAGE, format!("the inspector serves on loopback only; {addr} is not loopback")));
                }
                TcpListener::bind(addr).await.map_err(|error| {
                    let why = match error.kind() {
                        std::io::ErrorKind::AddrInUse => "is in use".to_string(),
                        _ => format!("cannot be bound ({error})"),
                    };
                    fail(
                        USAGE,
                        format!("the inspector address {addr} {why}; pick another with --inspect or use --no-inspect"),
                    )
                })?
            }
            None => match default_listener().await {
                Some(listener) => listener,
                None => {
                    // Not a warning: the relay is what was asked for, and the Ready line shows no inspector URL.
                    tracing::info!("no free port for the inspector from {DEFAULT_PORT}; running without it");
                    return Ok(None);
                }
            },
        };
        let addr = listener.local_addr()?;
        let (updates, _) = broadcast::channel(256);
        let token = hex::encode(github::random::secret_bytes::<16>()?);
        let signers = rules
            .iter()
            .map(|rule| Signer {
                sources: rule.sources.iter().map(ToString::to_string).collect(),
                target: rule.target.0.clone(),
                secret: rule.secret.clone(),
            })
            .collect();
        let store = Mutex::new(store::Store::new(args.inspect_keep));
        let shared = Arc::new(Shared { store, updates, token, client, press, signers });
        let serving = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = serving.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| server::handle(shared.clone(), request));
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        Ok(Some(Self { shared, url: format!("http://{addr}"), task }))
    }

    /// `http://127.0.0.1:4040`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Takes in one relay event, and tells open pages what changed.
    pub fn observe(&self, event: &Event) {
        let changed = self.shared.lock().observe(event);
        match changed {
            Some(Change::Row(seq)) => self.shared.announce(seq),
            Some(Change::Served) => self.shared.announce_served(),
            None => {}
        }
    }
}

impl Drop for Inspector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// 127.0.0.1:4040, or the next free port.
async fn default_listener() -> Option<TcpListener> {
    for port in DEFAULT_PORT..DEFAULT_PORT + PORTS_TRIED {
        if let Ok(listener) = TcpListener::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)).await {
            return Some(listener);
        }
    }
    None
}

//! Fixtures: forwarded deliveries saved as JSON files (`--record`, `replay --save`, the inspector's Save),
//! and sent again re-signed with the local secret (`send --fixture`). The format is in docs/fixtures.md.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use github::DeliveryItem;
use relay::Outgoing;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::args::OutputArgs;
use crate::exit::{FAILURE, REJECTED, USAGE, fail};
use crate::json::{DeliveryFields, Headers, HookFields, Line};
use crate::term::{print, visible};

/// The format's version, written in every fixture. Version 2 writes `headers` as an object
/// ([`Headers`]); version 1 wrote a list of pairs, which is still read.
const VERSION: u32 = 2;
/// The versions this hookfwd reads.
const READS: std::ops::RangeInclusive<u32> = 1..=VERSION;
/// The longest fixture name: what most file systems take (255 bytes), less the `.partial` a
/// fixture is first written under.
const MAX_NAME: usize = 255 - PARTIAL.len();
/// Added to a fixture's name while it is written.
const PARTIAL: &str = ".partial";

/// One saved delivery.
#[derive(Debug, Serialize, Deserialize)]
pub struct Fixture {
    /// [`VERSION`] when written: marks the file as a hookfwd fixture.
    pub hookfwd_fixture: u32,
    /// `X-GitHub-Event`.
    pub event: String,
    /// The payload's `action`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// `X-GitHub-Delivery`.
    pub guid: String,
    /// When GitHub made the delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<DateTime<Utc>>,
    /// GitHub's id of the delivery (absent for one pushed by the blackhole, which has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_id: Option<u64>,
    /// The request headers as forwarded, without any signature.
    pub headers: Headers,
    /// The body when it is JSON, embedded byte for byte.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Box<RawValue>>,
    /// The body when it is UTF-8 but not JSON (a `form` hook's `payload=…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The body in base64 when it is not even UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_base64: Option<String>,
}

/// Whether a header must never be saved: signatures, and anything naming a secret or credentials.
fn is_secret(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.contains("signature") || lower.contains("secret") || lower == "authorization" || lower == "cookie"
}

impl Fixture {
    /// The fixture of a request as forwarded.
    pub fn new(item: &DeliveryItem, request: &Outgoing) -> Self {
        let headers = Headers(request.headers.iter().filter(|(name, _)| !is_secret(name)).cloned().collect());
        let (mut payload, mut body, mut body_base64) = (None, None, None);
        match std::str::from_utf8(&request.body) {
            Ok(text) => match serde_json::from_str::<Box<RawValue>>(text) {
                Ok(raw) => payload = Some(raw),
                Err(_) => body = Some(text.to_string()),
            },
            Err(_) => body_base64 = Some(base64::engine::general_purpose::STANDARD.encode(&request.body)),
        }
        Self {
            hookfwd_fixture: VERSION,
            event: item.event.clone(),
            action: item.action.clone(),
            guid: item.guid.clone(),
            delivered_at: Some(item.delivered_at),
            delivery_id: (item.id != 0).then_some(item.id),
            headers,
            payload,
            body,
            body_base64,
        }
    }

    /// The body bytes exactly as they were forwarded.
    pub fn bytes(&self) -> Result<Vec<u8>, String> {
        match (&self.payload, &self.body, &self.body_base64) {
            (Some(raw), None, None) => Ok(raw.get().as_bytes().to_vec()),
            (None, Some(text), None) => Ok(text.as_bytes().to_vec()),
            (None, None, Some(encoded)) => base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|_| "its body_base64 is not base64".to_string()),
            _ => Err("it needs exactly one of payload, body or body_base64".into()),
        }
    }

    /// The request to send: the saved headers (with the event and guid), re-signed with `secret`.
    pub fn request(&self, secret: Option<&github::Secret>) -> Result<Outgoing, String> {
        let body = self.bytes()?;
        let mut headers = self.headers.0.clone();
        for (name, value) in [("X-GitHub-Event", &self.event), ("X-GitHub-Delivery", &self.guid)] {
            if !headers.iter().any(|(key, _)| key.eq_ignore_ascii_case(name)) {
                headers.push((name.to_string(), value.clone()));
            }
        }
        Ok(Outgoing::from_pushed(&headers, &body, secret))
    }

    /// `20260101T120000Z-00000000042-issues.opened-GUID.json`: name order is delivery order (GitHub's
    /// times have whole seconds; its ids grow).
    pub fn file_name(&self) -> String {
        let mut at = self.delivered_at.map(|at| at.format("%Y%m%dT%H%M%SZ-").to_string()).unwrap_or_default();
        if let Some(id) = self.delivery_id {
            at.push_str(&format!("{id:011}-"));
        }
        let kind = match &self.action {
            Some(action) => format!("{}.{action}", self.event),
            None => self.event.clone(),
        };
        let name = format!("{at}{kind}-{}", self.guid);
        let mut safe: String =
            name.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
        // Too long for a file system (an event or guid GitHub would never send): cut, and kept apart
        // from another name cut the same way by a hash of the whole.
        if safe.len() + ".json".len() > MAX_NAME {
            let hash = hex::encode(&Sha256::digest(safe.as_bytes())[..8]);
            // Every character is ASCII by now, so any byte index is a character boundary.
            safe.truncate(MAX_NAME - ".json".len() - hash.len() - 1);
            safe = format!("{safe}-{hash}");
        }
        format!("{safe}.json")
    }

    /// The file's text: pretty JSON (the payload embedded as it was sent).
    pub fn to_json(&self) -> String {
        // Serializing plain strings, numbers and a RawValue cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }
}

/// A directory fixtures are written to, checked writable up front.
#[derive(Debug, Clone)]
pub struct Recorder {
    dir: PathBuf,
}

impl Recorder {
    /// Creates `dir` if needed (mode 0700: payloads are private) and checks that a file can be
    /// written there.
    pub async fn open(dir: &Path) -> anyhow::Result<Self> {
        let unwritable = |error: std::io::Error| {
            fail(USAGE, format!("cannot write fixtures into {}: {}", dir.display(), reason(&error)))
        };
        let path = dir.to_path_buf();
        let checked = blocking(move || {
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder.create(&path)?;
            let probe = path.join(format!(".hookfwd-probe-{}", std::process::id()));
            let _ = std::fs::remove_file(&probe);
            drop(private().open(&probe)?);
            let _ = std::fs::remove_file(&probe);
            Ok(path)
        })
        .await
        .map_err(unwritable)?;
        Ok(Self { dir: checked })
    }

    /// Writes one fixture (replacing a retry's earlier copy) and returns its path. Awaiting each write
    /// before the next keeps the files in the order the deliveries were forwarded.
    ///
    /// The file is first written as `NAME.json.partial`, created afresh, mode 0600, following no
    /// link: a link planted at that name is refused with one sentence rather than written through
    /// (a leftover file of a crash is replaced); the rename then replaces whatever is at the name.
    pub async fn write(&self, fixture: Fixture) -> std::io::Result<PathBuf> {
        let path = self.dir.join(fixture.file_name());
        blocking(move || {
            let mut partial = path.clone().into_os_string();
            partial.push(PARTIAL);
            let partial = PathBuf::from(partial);
            let mut file = match private().open(&partial) {
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                    if std::fs::symlink_metadata(&partial)?.file_type().is_symlink() {
                        return Err(std::io::Error::other(format!(
                            "{} is a symbolic link, which hookfwd never writes through; remove it",
                            partial.display()
                        )));
                    }
                    std::fs::remove_file(&partial)?;
                    private().open(&partial)?
                }
                opened => opened?,
            };
            std::io::Write::write_all(&mut file, fixture.to_json().as_bytes())?;
            drop(file);
            std::fs::rename(&partial, &path)?;
            Ok(path)
        })
        .await
    }
}

/// Options that create a file afresh, mode 0600, and (on unix) follow no symbolic link.
fn private() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    options
}

/// Runs file work off the async workers, so that a slow disk holds up no other task.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> std::io::Result<T> + Send + 'static) -> std::io::Result<T> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|error| Err(std::io::Error::other(error)))
}

/// An I/O error in a few words, without the `(os error N)` tail.
fn reason(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::ReadOnlyFilesystem => "the file system is read-only".into(),
        _ => error.to_string(),
    }
}

/// The fixture files a path names: the file itself, or a directory's `*.json` files in name order.
pub fn files(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(path)
        .map_err(|error| fail(USAGE, format!("cannot read {}: {}", path.display(), reason(&error))))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let entries = std::fs::read_dir(path)
        .map_err(|error| fail(USAGE, format!("cannot read {}: {}", path.display(), reason(&error))))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json") && path.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(fail(USAGE, format!("{} holds no fixture (*.json) files", path.display())));
    }
    Ok(files)
}

/// Reads one fixture file; anything else is one sentence.
pub fn load(path: &Path) -> anyhow::Result<Fixture> {
    let text = std::fs::read(path)
        .map_err(|error| fail(FAILURE, format!("cannot read {}: {}", path.display(), reason(&error))))?;
    let not_one = |why: String| fail(USAGE, format!("{} is not a hookfwd fixture: {why}", path.display()));
    let fixture: Fixture = serde_json::from_slice(&text).map_err(|error| not_one(error.to_string()))?;
    if !READS.contains(&fixture.hookfwd_fixture) {
        return Err(not_one(format!(
            "its version is {}, this hookfwd reads versions {} to {VERSION}",
            fixture.hookfwd_fixture,
            READS.start()
        )));
    }
    fixture.bytes().map_err(not_one)?;
    Ok(fixture)
}

/// Saves one delivery for `replay --save`, and says so (a line, or a JSON `saved` line).
pub async fn save_one(
    recorder: &Recorder,
    hook: &github::HookRef,
    item: &DeliveryItem,
    request: &Outgoing,
    output: &OutputArgs,
) -> anyhow::Result<()> {
    let path = recorder.write(Fixture::new(item, request)).await.map_err(|error| {
        fail(FAILURE, format!("could not write the fixture of {} [{}]: {}", item.kind(), item.guid, reason(&error)))
    })?;
    if output.json {
        let line = Line::Saved {
            hook: HookFields::of(hook),
            delivery: DeliveryFields::of(item),
            path: path.display().to_string(),
        };
        print(&line.to_json())?;
    } else if !output.quiet {
        print(&format!("saved {} [{}] to {}", visible(&item.kind()), visible(&item.guid), path.display()))?;
    }
    Ok(())
}

/// `send --fixture FILE|DIR`: every fixture posted, re-signed with the local secret; non-2xx fails the run.
/// `prepare` may change each fixture first (`send --set`).
pub async fn send(
    path: &Path,
    to: &relay::Target,
    secret: Option<&github::Secret>,
    output: &OutputArgs,
    prepare: &mut dyn FnMut(&Path, &mut Fixture) -> anyhow::Result<()>,
) -> anyhow::Result<ExitCode> {
    // Every file is read and checked before the first is sent: half a suite sent is a confusing result.
    let files = files(path)?;
    let mut fixtures =
        files.iter().map(|file| load(file).map(|fixture| (file, fixture))).collect::<Result<Vec<_>, _>>()?;
    for (file, fixture) in &mut fixtures {
        prepare(file, fixture)?;
    }
    let forwarder = relay::Forwarder::new(to.clone(), std::time::Duration::from_secs(30));
    let target = to.0.as_str();
    let mut refused = 0;
    for (file, fixture) in &fixtures {
        let request = fixture.request(secret).map_err(|why| fail(USAGE, format!("{}: {why}", file.display())))?;
        let response = forwarder
            .send(&request)
            .await
            .map_err(|reason| fail(FAILURE, format!("could not reach the handler at {target}: {reason}")))?;
        let ok = (200..300).contains(&response.status);
        refused += usize::from(!ok);
        let kind = match &fixture.action {
            Some(action) => format!("{}.{action}", fixture.event),
            None => fixture.event.clone(),
        };
        if output.json {
            let file = file.display().to_string();
            let line = Line::Sent {
                event: &fixture.event,
                action: fixture.action.as_deref(),
                guid: &fixture.guid,
                fixture: Some(&file),
                status: response.status,
                ok,
                latency_ms: response.latency.as_millis() as u64,
                target,
                answer: crate::answer::AnswerJson::of(&response.answer),
            };
            print(&line.to_json())?;
        } else if !output.quiet || !ok {
            print(&format!(
                "{}  --> {} [{}] from {} <-- [{}] POST {target} [{} ms]",
                chrono::Local::now().format("%Y-%m-%d %H:%M:%S"),
                visible(&kind),
                visible(&fixture.guid),
                file.display(),
                response.status,
                response.latency.as_millis()
            ))?;
            for line in crate::answer::excerpt(response.status, &response.answer, output.verbose) {
                print(&line)?;
            }
        }
    }
    if refused > 0 {
        return Err(fail(
            REJECTED,
            format!("the handler refused {refused} of {} fixture deliveries (not 2xx)", fixtures.len()),
        ));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use github::Secret;

    fn item() -> DeliveryItem {
        serde_json::from_value(serde_json::json!({"id": 7, "guid": "g-1/../x", "delivered_at": "2026-01-02T03:04:05Z",
            "redelivery": false, "duration": 0.1, "status": "OK", "status_code": 200, "event": "issues",
            "action": "opened"}))
        .unwrap()
    }

    #[test]
    fn a_json_payload_round_trips_byte_for_byte_without_signatures() {
        let payload = br#"{"action":"opened",  "n":1.50, "t":"\u00e9"}"#;
        let secret = Secret::new("fixture-secret-xyz");
        let request = Outgoing::synthetic("issues", payload, Some(&secret));
        let fixture = Fixture::new(&item(), &request);
        let text = fixture.to_json();
        assert!(!text.to_ascii_lowercase().contains("signature"), "{text}");
        assert!(!text.contains("sha256="), "{text}");
        let back: Fixture = serde_json::from_str(&text).unwrap();
        assert_eq!(back.bytes().unwrap(), payload);
        let resent = back.request(Some(&secret)).unwrap();
        assert_eq!(resent.body, payload);
        let sig = resent.header("X-Hub-Signature-256").unwrap();
        assert!(github::signature::verify_sha256(&secret, payload, sig));
    }

    #[test]
    fn headers_are_written_as_an_object_and_a_version_1_list_of_pairs_is_still_read() {
        let request = Outgoing::synthetic("issues", b"{}", None);
        let text = Fixture::new(&item(), &request).to_json();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            (value["hookfwd_fixture"].clone(), value["headers"]["X-GitHub-Event"].clone()),
            (2.into(), "issues".into())
        );
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old.json");
        std::fs::write(
            &old,
            r#"{"hookfwd_fixture": 1, "event": "issues", "guid": "g-1",
                "headers": [["X-GitHub-Event", "issues"], ["X-GitHub-Hook-ID", "42"]], "payload": {"n": 1}}"#,
        )
        .unwrap();
        let fixture = load(&old).unwrap();
        assert_eq!(fixture.request(None).unwrap().header("X-GitHub-Hook-ID"), Some("42"));
        std::fs::write(&old, r#"{"hookfwd_fixture": 3, "event": "e", "guid": "g", "headers": {}, "payload": {}}"#)
            .unwrap();
        let error = load(&old).err().unwrap().to_string();
        assert!(error.ends_with("its version is 3, this hookfwd reads versions 1 to 2"), "{error}");
    }

    #[test]
    fn a_body_that_is_not_json_is_kept_as_text_or_base64() {
        let mut request = Outgoing::synthetic("issues", b"payload=%7B%7D", None);
        let text = Fixture::new(&item(), &request);
        assert_eq!(text.body.as_deref(), Some("payload=%7B%7D"));
        request.body = vec![0xff, 0x00, 0x7b];
        let binary = Fixture::new(&item(), &request);
        assert_eq!(binary.bytes().unwrap(), vec![0xff, 0x00, 0x7b]);
    }

    #[test]
    fn a_name_too_long_for_a_file_system_is_cut_with_a_hash_of_the_whole() {
        let request = Outgoing::synthetic("issues", b"{}", None);
        let mut fixture = Fixture::new(&item(), &request);
        fixture.guid = "g".repeat(300);
        let long = fixture.file_name();
        fixture.guid.push('h');
        let other = fixture.file_name();
        assert_eq!(long.len() + PARTIAL.len(), 255, "{long}");
        assert!(long.starts_with("20260102T030405Z-00000000007-issues.opened-ggg") && long.ends_with(".json"));
        assert_ne!(long, other, "the hash tells apart names cut alike");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn fixtures_are_private_and_a_planted_link_is_never_written_through() {
        use std::os::unix::fs::PermissionsExt;
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("fixtures");
        let recorder = Recorder::open(&dir).await.unwrap();
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        let request = Outgoing::synthetic("issues", b"{}", None);
        let path = recorder.write(Fixture::new(&item(), &request)).await.unwrap();
        assert_eq!(mode(&path), 0o600);
        // A link where the next write starts: the file it points at is left alone.
        let target = base.path().join("victim");
        std::fs::write(&target, "keep me").unwrap();
        let partial = format!("{}.partial", path.display());
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&target, &partial).unwrap();
        let error = recorder.write(Fixture::new(&item(), &request)).await.unwrap_err();
        assert!(error.to_string().ends_with("is a symbolic link, which hookfwd never writes through; remove it"));
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
        // A leftover of a crash is replaced.
        std::fs::remove_file(&partial).unwrap();
        std::fs::write(&partial, "torn").unwrap();
        let path = recorder.write(Fixture::new(&item(), &request)).await.unwrap();
        assert!(load(&path).is_ok());
    }

    #[test]
    fn file_names_sort_by_time_and_cannot_escape_the_directory() {
        let request = Outgoing::synthetic("issues", b"{}", None);
        let name = Fixture::new(&item(), &request).file_name();
        assert_eq!(name, "20260102T030405Z-00000000007-issues.opened-g-1_.._x.json");
    }
}

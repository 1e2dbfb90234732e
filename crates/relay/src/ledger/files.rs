//! The state directory's files beside each ledger: locks, kept upstream secrets, and the
//! checks that keep other users from planting links in it.
//!
//! Files are mode 0600 and a directory the ledger creates is mode 0700. On unix, the lock, the
//! log and the temporary file are opened without following symbolic links (the temporary file
//! is created afresh, `O_EXCL`), and [`check_dir`] refuses a directory another user owns or that
//! group or others may write: such a user could plant a link and make hookfwd write through it.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use github::HookRef;

use super::FileLedger;
use crate::Error;

/// The directory of one GitHub instance's ledgers under `state_dir`, named for its API host and
/// port (`api.github.com`, `ghe.example.com`, `127.0.0.1-8080`): hook ids are per instance.
pub fn dir(state_dir: &Path, api_url: &url::Url) -> PathBuf {
    state_dir.join(instance(api_url))
}

/// The name of the GitHub instance at `api_url`: its API host and port (`api.github.com`,
/// `127.0.0.1-8080`), for the file ledger's directory and the Redis ledger's keys.
pub fn instance(api_url: &url::Url) -> String {
    let host = api_url.host_str().unwrap_or("github");
    match api_url.port() {
        Some(port) => format!("{host}-{port}"),
        None => host.to_string(),
    }
}

/// A hook's ledger held by this process until dropped: two processes forwarding one hook
/// from one state directory would forward every delivery twice.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

impl Lock {
    /// Takes the lock of `hook`'s ledger in `dir`, or fails at once with [`Error::Busy`].
    pub fn take(dir: &Path, hook: &HookRef) -> Result<Self, Error> {
        let path = beside(dir, hook, "lock");
        create_dir(dir).map_err(|source| Error::Ledger { path: path.clone(), action: "locked", source })?;
        Self::at(path, &hook.to_string())
    }

    /// Takes the lock file at `path`, of the hook named `hook`.
    fn at(path: PathBuf, hook: &str) -> Result<Self, Error> {
        let failed = |source| Error::Ledger { path: path.clone(), action: "locked", source };
        // `private` follows no link: a planted one fails here instead of being written through.
        let mut file = private().read(true).write(true).create(true).truncate(false).open(&path).map_err(failed)?;
        match file.try_lock() {
            Ok(()) => {
                // The PID tells a second run whom to stop; the lock, not the text, is what excludes.
                file.set_len(0).and_then(|()| write!(file, "{}", std::process::id())).map_err(failed)?;
                Ok(Self { _file: file })
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = match std::fs::read_to_string(&path).map(|text| text.trim().parse::<u32>()) {
                    Ok(Ok(pid)) => format!("hookfwd process {pid}"),
                    _ => "another hookfwd".to_string(),
                };
                Err(Error::Busy { hook: hook.to_string(), holder, path })
            }
            Err(std::fs::TryLockError::Error(source)) => Err(failed(source)),
        }
    }
}

/// The upstream secret of a hook hookfwd created (the one GitHub signs with), kept beside its
/// ledger, mode 0600, so that pushed deliveries can be verified on later runs too.
pub fn store_hook_secret(dir: &Path, hook: &HookRef, secret: &github::Secret) -> Result<(), Error> {
    let path = beside(dir, hook, "secret");
    let failed = |source| Error::Ledger { path: path.clone(), action: "written", source };
    create_dir(dir).map_err(failed)?;
    let temp = path.with_extension("secret.tmp");
    let write = || -> io::Result<()> {
        // Created afresh (`O_EXCL`, no links followed), as the ledger's snapshot is: a leftover
        // or a planted link at that name is removed rather than written through.
        match std::fs::remove_file(&temp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut file = private().write(true).create_new(true).open(&temp)?;
        file.write_all(secret.expose().as_bytes())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temp, &path)?;
        sync_dir(dir)
    };
    write().map_err(failed)
}

/// The upstream secret stored for `hook` by [`store_hook_secret`], if any.
pub fn load_hook_secret(dir: &Path, hook: &HookRef) -> Result<Option<github::Secret>, Error> {
    let path = beside(dir, hook, "secret");
    let read = |source| Error::Ledger { path: path.clone(), action: "read", source };
    // `private` follows no link, so a planted one is refused rather than read.
    let mut file = match private().read(true).open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(read(source)),
    };
    let mut text = String::new();
    io::Read::read_to_string(&mut file, &mut text).map_err(read)?;
    let text = text.trim();
    Ok((!text.is_empty()).then(|| github::Secret::new(text.to_string())))
}

/// Whether hookfwd created `hook`: the upstream secret kept by [`store_hook_secret`] is written
/// exactly when a run creates a hook, so it doubles as the record of the hooks hookfwd owns.
pub fn created_by_hookfwd(dir: &Path, hook: &HookRef) -> bool {
    beside(dir, hook, "secret").exists()
}

/// Forgets a deleted hook: its kept upstream secret, so that the record of created hooks stays true.
pub fn forget_hook(dir: &Path, hook: &HookRef) -> Result<(), Error> {
    let path = beside(dir, hook, "secret");
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::Ledger { path, action: "removed", source: e }),
        _ => Ok(()),
    }
}

/// Makes a rename in `dir` durable: an fsync of the directory. Skipped on Windows, where std cannot
/// open a directory (that needs `FILE_FLAG_BACKUP_SEMANTICS`): NTFS journals the rename, and a power
/// cut just after it can at worst undo it, leaving the previous file whole (what was recorded since
/// is then forwarded again, never lost).
pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// The file `hook`'s ledger has beside it, its name with `.{ext}` added. (`with_extension` would cut a
/// repository name at its dot, so that `o/hello.world` and `o/hello.there` shared `repos-o-hello.secret`.)
fn beside(dir: &Path, hook: &HookRef, ext: &str) -> PathBuf {
    let mut name = FileLedger::path(dir, hook).into_os_string();
    name.push(".");
    name.push(ext);
    PathBuf::from(name)
}

/// Open options for a file only the user may read, which never follow a symbolic link (on unix).
pub(super) fn private() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    options
}

/// Creates the ledger directory `dir` if needed, and refuses one that another user could plant
/// files or links in: owned by someone else, or writable by group or others (on unix; elsewhere
/// the directory's ACLs are the operating system's business).
pub fn check_dir(dir: &Path) -> Result<(), Error> {
    create_dir(dir).map_err(|source| Error::Ledger { path: dir.to_path_buf(), action: "written", source })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let metadata = std::fs::metadata(dir).map_err(|source| Error::Ledger {
            path: dir.to_path_buf(),
            action: "read",
            source,
        })?;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        let problem = if metadata.uid() != me {
            Some("is owned by another user")
        } else if metadata.permissions().mode() & 0o022 != 0 {
            Some("can be written by other users")
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(Error::StateDir { path: dir.to_path_buf(), problem });
        }
    }
    Ok(())
}

pub(super) fn append(path: &Path) -> io::Result<File> {
    private().append(true).open(path)
}

pub(super) fn create_dir(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

//! The keys `dev` reads on its terminal: `r` retries now. Read only when stdin is a terminal, so
//! piped stdin is never touched.

use tokio::sync::watch;

/// The terminal in key-at-a-time mode, each press of `r` counted in the run's retry key (which the
/// inspector's buttons press too); line mode comes back on drop.
pub struct Keys {
    /// The terminal's settings before, restored on drop.
    #[cfg(unix)]
    saved: libc::termios,
}

impl Keys {
    /// Starts reading keys, counting presses of `r` in `sender`, or `None` when stdin is not a terminal (or
    /// cannot be switched).
    #[cfg(unix)]
    pub fn listen(sender: watch::Sender<u64>) -> Option<Self> {
        use std::io::IsTerminal;
        if !std::io::stdin().is_terminal() {
            return None;
        }
        // SAFETY: plain queries of this process and its terminal.
        let (owner, ours) = unsafe { (libc::tcgetpgrp(libc::STDIN_FILENO), libc::getpgrp()) };
        // -1: not the controlling terminal, so no job control applies to it.
        if owner != -1 && owner != ours {
            // Started in the background (`hookfwd dev … &`): changing or reading the terminal would stop it.
            return None;
        }
        // Sent to the background later (Ctrl-Z, `bg`), a read of the terminal then fails instead of
        // stopping hookfwd, and the line mode can still be restored on the way out.
        // SAFETY: ignoring two job-control signals; hookfwd has no handler of its own for them.
        unsafe {
            libc::signal(libc::SIGTTIN, libc::SIG_IGN);
            libc::signal(libc::SIGTTOU, libc::SIG_IGN);
        }
        // SAFETY: `termios` is plain data, filled in by `tcgetattr` before it is read.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: fd 0 is open (a terminal, checked above) and `saved` is a valid termios to fill.
        if unsafe { libc::tcgetattr(libc::STDIN_FILENO, &mut saved) } != 0 {
            return None;
        }
        let mut keys = saved;
        // A key at a time, not echoed; Ctrl-C still signals (ISIG), and output is untouched (no raw mode).
        keys.c_lflag &= !(libc::ICANON | libc::ECHO);
        keys.c_cc[libc::VMIN] = 1;
        keys.c_cc[libc::VTIME] = 0;
        // SAFETY: as above; `keys` is a copy of the terminal's own settings with two flags cleared.
        if unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &keys) } != 0 {
            return None;
        }
        // A plain thread: a read of a terminal cannot be cancelled, and this one ends with the process.
        let spawned = std::thread::Builder::new().name("keys".into()).spawn(move || {
            use std::io::Read;
            let mut byte = [0u8; 1];
            let mut stdin = std::io::stdin();
            while let Ok(1) = stdin.read(&mut byte) {
                if sender.is_closed() {
                    break;
                }
                if matches!(byte[0], b'r' | b'R') {
                    sender.send_modify(|presses| *presses += 1);
                }
            }
        });
        let keys = Self { saved };
        // Dropping `keys` restores the terminal.
        spawned.ok().map(|_| keys)
    }

    /// No keys where the terminal's line mode cannot be switched.
    #[cfg(not(unix))]
    pub fn listen(_sender: watch::Sender<u64>) -> Option<Self> {
        None
    }
}

#[cfg(unix)]
impl Drop for Keys {
    fn drop(&mut self) {
        // SAFETY: restores the settings read from the same terminal in `listen`.
        unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &self.saved) };
    }
}

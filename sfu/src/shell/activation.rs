//! The public listener handed over by systemd (socket activation,
//! sd_listen_fds(3)): how meet serves HTTPS on port 443 although its unit
//! grants it no capability. `meet.socket` binds the port and systemd
//! passes the socket as descriptor 3, naming this process in `LISTEN_PID`
//! and the number of sockets in `LISTEN_FDS`; the server then serves on it
//! instead of binding `listen`.
//!
//! A few lines over socket2 and libc (both used already) rather than a
//! crate: the protocol is two variables and a fixed first descriptor, and
//! what matters is checking what was passed (one listening TCP socket)
//! with errors that say what is wrong.
//!
//! The variables are left as they are: removing them from the environment
//! is not safe once the runtime's threads run, and the socket is made
//! close-on-exec, so nothing meet might start inherits it.

use std::net::TcpListener;
use std::os::fd::{FromRawFd, RawFd};

use socket2::{Domain, Socket, Type};

/// `SD_LISTEN_FDS_START`: the first passed descriptor.
const FIRST_FD: RawFd = 3;

#[derive(Debug, thiserror::Error)]
pub enum ActivationError {
    #[error("LISTEN_FDS={0:?} is not a number of sockets")]
    BadCount(String),
    #[error(
        "systemd passed {0} sockets; meet serves on one (a single ListenStream= in meet.socket)"
    )]
    TooMany(usize),
    #[error("the socket systemd passed (descriptor 3) is not a listening TCP socket: {0}")]
    NotTcpListener(&'static str),
    #[error("the socket systemd passed (descriptor 3): {0}")]
    Io(#[from] std::io::Error),
}

/// How many sockets systemd passed to the process `pid`, from the values
/// of `LISTEN_PID` and `LISTEN_FDS`: none when they are absent or meant
/// for another process (a parent's, inherited).
pub fn passed_count(
    listen_pid: Option<&str>,
    listen_fds: Option<&str>,
    pid: u32,
) -> Result<usize, ActivationError> {
    let (Some(listen_pid), Some(listen_fds)) = (listen_pid, listen_fds) else {
        return Ok(0);
    };
    if listen_pid.trim().parse::<u32>().ok() != Some(pid) {
        return Ok(0);
    }
    listen_fds
        .trim()
        .parse()
        .map_err(|_| ActivationError::BadCount(listen_fds.to_owned()))
}

/// The listening socket systemd passed to this process, if it passed one.
pub fn listener() -> Result<Option<TcpListener>, ActivationError> {
    let var = |name| std::env::var(name).ok();
    let count = passed_count(
        var("LISTEN_PID").as_deref(),
        var("LISTEN_FDS").as_deref(),
        std::process::id(),
    )?;
    match count {
        0 => return Ok(None),
        1 => {}
        n => return Err(ActivationError::TooMany(n)),
    }
    // SAFETY: fstat(2) on a descriptor number with a zeroed buffer of the
    // right type; an unopened descriptor is an error (EBADF), not UB.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(FIRST_FD, &mut stat) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    if stat.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(ActivationError::NotTcpListener("no socket at all"));
    }
    // SAFETY: descriptor 3 is open, is a socket, and was passed to this
    // process (LISTEN_PID is ours) for it to own; nothing else in meet
    // takes it.
    let socket = unsafe { Socket::from_raw_fd(FIRST_FD) };
    if socket.r#type()? != Type::STREAM {
        return Err(ActivationError::NotTcpListener("not a stream socket"));
    }
    let domain = socket.domain()?;
    if domain != Domain::IPV4 && domain != Domain::IPV6 {
        return Err(ActivationError::NotTcpListener("not an IP socket"));
    }
    if !socket.is_listener()? {
        return Err(ActivationError::NotTcpListener("not listening"));
    }
    socket.set_cloexec(true)?;
    // tokio's listener needs it, and systemd passes sockets blocking.
    socket.set_nonblocking(true)?;
    Ok(Some(socket.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sockets_passed_to_this_very_process_count() {
        assert_eq!(passed_count(None, None, 42).unwrap(), 0);
        assert_eq!(passed_count(Some("42"), None, 42).unwrap(), 0);
        assert_eq!(passed_count(None, Some("1"), 42).unwrap(), 0);
        // A parent's, inherited: not ours to take.
        assert_eq!(passed_count(Some("41"), Some("1"), 42).unwrap(), 0);
        assert_eq!(passed_count(Some("x"), Some("1"), 42).unwrap(), 0);
        assert_eq!(passed_count(Some("42"), Some("1"), 42).unwrap(), 1);
        assert_eq!(passed_count(Some("42"), Some("2"), 42).unwrap(), 2);
        let e = passed_count(Some("42"), Some("one"), 42).unwrap_err();
        assert!(e.to_string().contains("LISTEN_FDS=\"one\""), "{e}");
    }
}

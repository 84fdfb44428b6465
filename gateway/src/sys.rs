//! The one module allowed `unsafe`: small socket calls monoio does not offer.
//!
//! monoio's `TcpStream` exposes its descriptor only as a raw fd, and the TLS
//! stream not at all, so a connection remembers its fd when it is opened and
//! borrows it here for the length of one call.

#![allow(unsafe_code)]

use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, RawFd};

/// Whether an idle connection has anything waiting: the peer's close (EOF),
/// an error such as a reset, or bytes nobody asked for (a TLS close_notify,
/// a late answer). Any of these means the connection must not carry a new
/// request. Never blocks: `MSG_DONTWAIT`, and `MSG_PEEK` leaves what it
/// sees in place.
pub fn has_input(fd: RawFd) -> bool {
    // SAFETY: `fd` is the descriptor of a socket owned by the caller's
    // connection, which stays open for the whole call; the borrow ends with
    // it.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    let mut byte = [MaybeUninit::<u8>::uninit(); 1];
    match socket2::SockRef::from(&fd).recv_with_flags(&mut byte, libc::MSG_PEEK | libc::MSG_DONTWAIT) {
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
        Ok(_) => true,
    }
}

/// Whether the peer closed its side (EOF) or the connection failed, while
/// bytes it sent and nobody read yet (a pipelined request) count as open.
/// Never blocks, and leaves what it sees in place.
pub fn peer_closed(fd: RawFd) -> bool {
    // SAFETY: as in `has_input`: the caller's connection owns `fd` and keeps
    // it open for the whole call.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    let mut byte = [MaybeUninit::<u8>::uninit(); 1];
    match socket2::SockRef::from(&fd).recv_with_flags(&mut byte, libc::MSG_PEEK | libc::MSG_DONTWAIT) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
}

/// Asks this process to reload its config file, as `kill -HUP` would: the
/// signal thread re-reads and validates it (the admin API's reload).
pub fn request_reload() -> bool {
    // SAFETY: getpid and kill take and return plain integers; signalling our
    // own process with SIGHUP, which the signal thread handles, has no other
    // effect.
    unsafe { libc::kill(libc::getpid(), libc::SIGHUP) == 0 }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::fd::AsRawFd;

    #[test]
    fn has_input_sees_bytes_and_the_peer_closing() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        assert!(!super::has_input(client.as_raw_fd()), "open and quiet");
        server.write_all(b"x").unwrap();
        while !super::has_input(client.as_raw_fd()) {
            std::thread::yield_now();
        }
        let mut b = [0u8; 1];
        std::io::Read::read_exact(&mut &client, &mut b).unwrap();
        assert!(!super::has_input(client.as_raw_fd()), "the byte was read");
        drop(server);
        while !super::has_input(client.as_raw_fd()) {
            std::thread::yield_now();
        }
    }

    #[test]
    fn peer_closed_tells_a_close_from_pipelined_bytes() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        assert!(!super::peer_closed(client.as_raw_fd()), "open and quiet");
        server.write_all(b"next request").unwrap();
        while !super::has_input(client.as_raw_fd()) {
            std::thread::yield_now();
        }
        assert!(!super::peer_closed(client.as_raw_fd()), "bytes waiting are not a close");
        let mut b = [0u8; 12];
        std::io::Read::read_exact(&mut &client, &mut b).unwrap();
        drop(server);
        while !super::peer_closed(client.as_raw_fd()) {
            std::thread::yield_now();
        }
    }
}

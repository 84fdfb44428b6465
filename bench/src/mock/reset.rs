//! Resetting a connection (`reset`, `reset-mid-stream`): the close that
//! follows sends a TCP RST instead of a FIN.
//!
//! Setting `SO_LINGER` to zero is the standard way: `close` then drops the
//! connection at once and tells the peer with a reset, so the client sees
//! `ECONNRESET` after whatever it had already received (bytes already sent
//! stay readable; only unsent ones are dropped). monoio's `TcpStream` offers
//! no linger setter and no `AsFd`, only its raw descriptor, so this is the
//! crate's one `unsafe` block: borrowing that descriptor for `socket2`.

#![allow(unsafe_code, reason = "borrows the stream's own descriptor; see the SAFETY comment")]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

use monoio::net::TcpStream;

/// Makes the next close of `stream` a reset.
pub fn arm(stream: &TcpStream) -> io::Result<()> {
    // SAFETY: the descriptor belongs to `stream`, which is borrowed for
    // longer than `fd` lives, so it stays open while `fd` is used.
    let fd = unsafe { BorrowedFd::borrow_raw(stream.as_raw_fd()) };
    socket2::SockRef::from(&fd).set_linger(Some(Duration::ZERO))
}

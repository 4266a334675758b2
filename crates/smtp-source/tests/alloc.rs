//! The hot path allocates nothing per message: a whole `-d` transaction
//! through the sans-IO client (commands staged and handed out, replies
//! parsed, header block rendered into a reused buffer) after warm-up.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::Cell,
};

use bytes::BytesMut;
use smtp_proto::{
    client::{ClientConfig, ClientSession, Esmtp, Protocol, Transmit},
    message::HeaderBlock,
};

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

#[allow(unsafe_code)]
// SAFETY: defers to the system allocator; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> u64 {
    ALLOCS.with(Cell::get)
}

/// One transaction; replies are appended to `rbuf` as a server would send
/// them. `replies` are the groups of replies, one group per write the
/// client makes.
fn transaction(
    s: &mut ClientSession,
    out: &mut Transmit,
    rbuf: &mut BytesMut,
    head: &mut BytesMut,
    replies: &[&[u8]],
) {
    head.clear();
    HeaderBlock {
        from: b"foo@client.example",
        to: b"rcpt7@example.org",
        date: b"Sun, 22 Nov 2026 00:00:00 +0000 (UTC)",
        message_id: (0x1234, 3, 5),
        hostname: b"client.example",
        subject: None,
    }
    .write(head);
    s.mail(b"foo@client.example", head.len() as u64 + 100)
        .unwrap();
    s.rcpt(&[b"rcpt", b"7", b"@example.org"]);
    s.data();
    for group in replies {
        assert!(s.poll_transmit(out));
        rbuf.extend_from_slice(group);
        s.handle_input(rbuf).unwrap();
    }
    while s.poll_event().is_some() {}
    assert!(s.is_idle());
}

fn per_transaction(config: ClientConfig, ehlo_reply: &[u8], replies: &[&[u8]]) -> f64 {
    let mut s = ClientSession::new(config);
    let (mut out, mut rbuf, mut head) = (
        Transmit::default(),
        BytesMut::with_capacity(4096),
        BytesMut::with_capacity(512),
    );
    rbuf.extend_from_slice(b"220 hi\r\n");
    s.handle_input(&mut rbuf).unwrap();
    s.poll_transmit(&mut out);
    rbuf.extend_from_slice(ehlo_reply);
    s.handle_input(&mut rbuf).unwrap();
    while s.poll_event().is_some() {}
    for _ in 0..100 {
        transaction(&mut s, &mut out, &mut rbuf, &mut head, replies);
    }
    let before = allocs();
    for _ in 0..1000 {
        transaction(&mut s, &mut out, &mut rbuf, &mut head, replies);
    }
    (allocs() - before) as f64 / 1000.0
}

#[test]
fn no_allocation_per_transaction() {
    let a = allocs();
    let v = std::hint::black_box(vec![1u8; 10]);
    assert!(allocs() > a, "the counter counts");
    drop(v);
    let config = ClientConfig::new(Protocol::Smtp, Some(b"client.example"), false);
    let stop_and_wait: &[&[u8]] = &[
        b"250 2.1.0 Ok\r\n",
        b"250 2.1.5 Ok\r\n",
        b"354 go\r\n",
        b"250 2.0.0 Ok\r\n",
    ];
    let per_txn = per_transaction(config.clone(), b"250 ok\r\n", stop_and_wait);
    assert!(per_txn < 0.01, "{per_txn} allocations per transaction");

    // ESMTP: MAIL with SIZE=, RCPT and BDAT LAST in one write.
    let mut esmtp = config;
    esmtp.esmtp = Esmtp {
        pipelining: true,
        chunking: Some(0),
        size: true,
        ..Esmtp::default()
    };
    let caps = b"250-x\r\n250-PIPELINING\r\n250-SIZE 0\r\n250 CHUNKING\r\n";
    let one_write: &[&[u8]] = &[b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 Ok\r\n"];
    let per_txn = per_transaction(esmtp, caps, one_write);
    assert!(
        per_txn < 0.01,
        "{per_txn} allocations per pipelined transaction"
    );
}

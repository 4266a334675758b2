//! What `--stamp` and `--verify` cost per message: the source writing one
//! `X-Smtp-Stamp` line (a clock read, a counter, one formatted line), and
//! the sink's check of a whole stamped message as it arrives (finding the
//! stamp, then length and digest over the body). docs/performance.md
//! quotes these beside the lab's A/B figures, which are too noisy to
//! resolve a cost this small.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use smtp_proto::{message::Body, stamp::RunId, stamp::StampVerifier};
use smtp_source::{segment::Segment, stamp::Stamper};

fn stamp(c: &mut Criterion) {
    let run = RunId::new(b"bench-run").unwrap();
    let body = Body::Generated(10_240).render_raw();
    let stamper = Stamper::new(run, Segment::WHOLE, true, &body);
    let mut head = BytesMut::with_capacity(256);
    c.bench_function("source: stamp one message", |b| {
        b.iter(|| {
            head.clear();
            stamper.write(&mut head);
            black_box(head.len())
        });
    });

    // One whole message as the sink sees it after unstuffing: a few
    // headers an MTA added, the source's, then the 10 KiB body.
    let mut message = BytesMut::new();
    message.extend_from_slice(b"Received: from client.example ([127.0.0.1])\r\n\tby mta.example; Tue, 1 Dec 2026 00:00:00 +0000\r\n");
    stamper.write(&mut message);
    message.extend_from_slice(b"From: <foo@client.example>\r\nTo: <bar@example.org>\r\n\r\n");
    message.extend_from_slice(&body);
    let mut g = c.benchmark_group("sink");
    g.throughput(Throughput::Bytes(message.len() as u64));
    g.bench_function("verify one 10 KiB message", |b| {
        b.iter(|| {
            let mut v = StampVerifier::new();
            // In pieces of a socket read's size, as the sink feeds it.
            for piece in message.chunks(4096) {
                v.update(black_box(piece));
            }
            black_box(v.finish())
        });
    });
    g.finish();
}

criterion_group!(benches, stamp);
criterion_main!(benches);

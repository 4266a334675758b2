//! Throughput of the smtp-proto codec: command framing, reply assembly and
//! DATA decoding (count-only and unstuffing), in bytes per second.
//!
//! Run: `cargo bench --bench proto -- --warm-up-time 1 --measurement-time 3`.
//! Each iteration parses from a freshly filled buffer; filling it (a copy,
//! as a socket read would be) is setup and is not timed.

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use smtp_proto::message::Body;
use smtp_proto::{
    stuff, Capabilities, CommandParser, DataDecoder, DataEvent, DataMode, DotStuffer, ReplyParser,
};
use std::hint::black_box;

/// The EHLO reply of Postfix's smtp-sink: 9 lines.
const EHLO_REPLY: &[u8] = b"250-smtp-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n\
250-AUTH PLAIN LOGIN\r\n250-XCLIENT NAME HELO\r\n250-XFORWARD NAME ADDR PROTO HELO\r\n\
250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n250 \r\n";

/// A pipelining client's batches, as a sink reads them: 64 transactions
/// of MAIL (with parameters), three RCPTs and DATA, then one RSET/NOOP/QUIT
/// tail. Returns the bytes and the number of commands.
fn command_batch() -> (Vec<u8>, u64) {
    let mut out = Vec::new();
    let mut n = 0;
    out.extend_from_slice(b"EHLO client.example.org\r\n");
    n += 1;
    for i in 0..64 {
        out.extend_from_slice(
            format!("MAIL FROM:<sender{i}@client.example.org> SIZE=10240 BODY=8BITMIME\r\n")
                .as_bytes(),
        );
        for r in 0..3 {
            out.extend_from_slice(
                format!("RCPT TO:<rcpt{}@example.org> NOTIFY=NEVER\r\n", i * 3 + r).as_bytes(),
            );
        }
        out.extend_from_slice(b"DATA\r\n");
        n += 5;
    }
    out.extend_from_slice(b"RSET\r\nNOOP\r\nQUIT\r\n");
    (out, n + 3)
}

/// A message of about `len` bytes shaped like Postfix's `-l` body, with
/// every 16th line starting with a dot (so it is stuffed on the wire), and
/// its `.` CRLF.
fn data_message(len: usize) -> Vec<u8> {
    let plain = Body::Generated(len).render();
    let content = &plain[..plain.len() - 3];
    let mut lines: Vec<u8> = Vec::with_capacity(len + len / 64);
    for (i, line) in content.split_inclusive(|&b| b == b'\n').enumerate() {
        if i % 16 == 15 {
            lines.push(b'.');
            lines.extend_from_slice(&line[1..]);
        } else {
            lines.extend_from_slice(line);
        }
    }
    stuff(&lines).to_vec()
}

fn commands(c: &mut Criterion) {
    let (batch, count) = command_batch();
    let mut g = c.benchmark_group("command");
    g.throughput(Throughput::Bytes(batch.len() as u64));
    g.bench_function(format!("pipelined_batch_{count}_cmds"), |b| {
        b.iter_batched_ref(
            || BytesMut::from(&batch[..]),
            |buf| {
                let mut p = CommandParser::default();
                let mut n = 0u64;
                while let Some(cmd) = p.parse(buf).expect("valid batch") {
                    black_box(&cmd);
                    n += 1;
                }
                assert_eq!(n, count);
            },
            BatchSize::SmallInput,
        );
    });
    // The same batch with typed views, as a checking server would do.
    g.bench_function(format!("pipelined_batch_{count}_cmds_typed"), |b| {
        b.iter_batched_ref(
            || BytesMut::from(&batch[..]),
            |buf| {
                let mut p = CommandParser::default();
                while let Some(cmd) = p.parse(buf).expect("valid batch") {
                    match cmd.verb {
                        smtp_proto::Verb::Mail => {
                            black_box(cmd.mail_from().expect("valid"));
                        }
                        smtp_proto::Verb::Rcpt => {
                            black_box(cmd.rcpt_to().expect("valid"));
                        }
                        _ => {
                            black_box(&cmd);
                        }
                    }
                }
            },
            BatchSize::SmallInput,
        );
    });
    g.finish();
}

fn replies(c: &mut Criterion) {
    let mut g = c.benchmark_group("reply");
    let single: &[u8] = b"250 2.1.0 Ok\r\n";
    // 64 pipelined single-line replies: one read of a pipelining client.
    let singles = single.repeat(64);
    g.throughput(Throughput::Bytes(singles.len() as u64));
    g.bench_function("single_line_x64", |b| {
        b.iter_batched_ref(
            || BytesMut::from(&singles[..]),
            |buf| {
                let mut p = ReplyParser::default();
                while let Some(r) = p.parse(buf).expect("valid") {
                    black_box(&r);
                }
            },
            BatchSize::SmallInput,
        );
    });
    g.throughput(Throughput::Bytes(EHLO_REPLY.len() as u64));
    g.bench_function("ehlo_9_lines", |b| {
        b.iter_batched_ref(
            || BytesMut::from(EHLO_REPLY),
            |buf| {
                let r = ReplyParser::default().parse(buf).expect("valid");
                black_box(r.expect("complete"));
            },
            BatchSize::SmallInput,
        );
    });
    g.bench_function("ehlo_9_lines_capabilities", |b| {
        b.iter_batched_ref(
            || BytesMut::from(EHLO_REPLY),
            |buf| {
                let r = ReplyParser::default().parse(buf).expect("valid");
                black_box(Capabilities::from_reply(&r.expect("complete")));
            },
            BatchSize::SmallInput,
        );
    });
    g.finish();
}

fn data(c: &mut Criterion) {
    let mut g = c.benchmark_group("data");
    for (name, len) in [("1KiB", 1024), ("64KiB", 64 * 1024), ("1MiB", 1024 * 1024)] {
        let msg = data_message(len);
        g.throughput(Throughput::Bytes(msg.len() as u64));
        let size = if len > 64 * 1024 {
            BatchSize::LargeInput
        } else {
            BatchSize::SmallInput
        };
        for mode in [DataMode::CountOnly, DataMode::Unstuff] {
            let id = format!(
                "{}/{name}",
                if mode == DataMode::CountOnly {
                    "count_only"
                } else {
                    "unstuff"
                }
            );
            g.bench_function(id, |b| {
                // One decoder per connection, as the sink has: it is ready
                // for the next message after each End.
                let mut dec = DataDecoder::new(mode);
                b.iter_batched_ref(
                    || BytesMut::from(&msg[..]),
                    |buf| {
                        let mut n = 0usize;
                        loop {
                            match dec.parse(buf).expect("infallible") {
                                Some(DataEvent::Chunk(c)) => n += c.len(),
                                Some(DataEvent::Skipped(k)) => n += k,
                                Some(DataEvent::End) => break,
                                None => panic!("message has an end"),
                            }
                        }
                        black_box(n)
                    },
                    size,
                );
            });
        }
        let content = &msg[..];
        g.bench_function(format!("stuff/{name}"), |b| {
            let mut out = BytesMut::with_capacity(content.len() + content.len() / 16);
            b.iter(|| {
                out.clear();
                let mut s = DotStuffer::new();
                s.encode(black_box(content), &mut out);
                s.finish(&mut out);
                black_box(out.len())
            });
        });
    }
    g.finish();
}

criterion_group!(benches, commands, replies, data);
criterion_main!(benches);

//! What measuring costs per sample: a clock read, and recording one latency
//! (push into the session's batch, plus the batch's share of adding it to
//! the run's histograms under the lock), and noting the counters for the
//! series. docs/performance.md quotes these.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use smtp_source::latency::{LiveCounts, Metric, Recorder, Samples};

fn record(c: &mut Criterion) {
    let rec = Recorder::new(0);
    c.bench_function("clock read (Recorder::now)", |b| {
        b.iter(|| black_box(rec.now()));
    });
    let mut samples = Samples::new(false);
    let mut v = 0u64;
    c.bench_function("record one sample (batched)", |b| {
        b.iter(|| {
            v = (v + 37) % 5_000;
            let now = black_box(v);
            samples.record(&rec, Metric::Rcpt, now, now);
            if samples.batch_full() {
                samples.flush(&rec, LiveCounts::default(), now);
            }
        });
    });
    // The series' counters: compared on every reply, a sample only when
    // one moved (once per transaction).
    let mut counted = Samples::new(false);
    let mut live = LiveCounts::default();
    c.bench_function("count: counters unchanged", |b| {
        b.iter(|| counted.count(&rec, black_box(live), 1));
    });
    c.bench_function("count: one more accepted", |b| {
        b.iter(|| {
            live.accepted += 1;
            counted.count(&rec, black_box(live), 1);
            if counted.batch_full() {
                counted.flush(&rec, live, 1);
            }
        });
    });
    let mut corrected = Samples::new(true);
    c.bench_function("record one sample (batched, --rate)", |b| {
        b.iter(|| {
            v = (v + 37) % 5_000;
            let now = black_box(v);
            corrected.record(&rec, Metric::Rcpt, now, now);
            if corrected.batch_full() {
                corrected.flush(&rec, LiveCounts::default(), now);
            }
        });
    });
}

criterion_group!(benches, record);
criterion_main!(benches);

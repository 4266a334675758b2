//! `rtt`: how long a new client waits for the sink: connect plus greeting,
//! EHLO, then `-n` NOOP round trips (median and 90th percentile reported).

use std::{io::Write, time::Instant};

use crate::{
    hold::read_reply,
    stream::{Endpoint, Stream},
};

pub(crate) struct Outcome {
    connect_greeting_us: f64,
    ehlo_us: f64,
    noop_us: Vec<f64>,
}

impl Outcome {
    pub(crate) fn to_json(&self) -> String {
        let mut sorted = self.noop_us.clone();
        sorted.sort_by(f64::total_cmp);
        let pct = |p: f64| sorted[((sorted.len() - 1) as f64 * p).round() as usize];
        format!(
            "{{\"connect_greeting_us\":{:.1},\"ehlo_us\":{:.1},\"noop_median_us\":{:.1},\"noop_p90_us\":{:.1},\"rounds\":{}}}",
            self.connect_greeting_us,
            self.ehlo_us,
            pct(0.5),
            pct(0.9),
            sorted.len()
        )
    }
}

pub(crate) fn run(endpoint: &Endpoint, rounds: usize) -> Result<Outcome, String> {
    let mut buf = Vec::with_capacity(512);
    let t = Instant::now();
    let mut stream = Stream::connect(endpoint).map_err(|e| format!("connect: {e}"))?;
    read_reply(&mut stream, &mut buf).map_err(|e| format!("greeting: {e}"))?;
    let connect_greeting_us = t.elapsed().as_secs_f64() * 1e6;
    let t = Instant::now();
    round_trip(&mut stream, b"EHLO rtt.example\r\n", &mut buf)?;
    let ehlo_us = t.elapsed().as_secs_f64() * 1e6;
    let mut noop_us = Vec::with_capacity(rounds);
    for _ in 0..rounds.max(1) {
        let t = Instant::now();
        round_trip(&mut stream, b"NOOP\r\n", &mut buf)?;
        noop_us.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let _ = round_trip(&mut stream, b"QUIT\r\n", &mut buf);
    Ok(Outcome {
        connect_greeting_us,
        ehlo_us,
        noop_us,
    })
}

fn round_trip(stream: &mut Stream, command: &[u8], buf: &mut Vec<u8>) -> Result<(), String> {
    stream
        .write_all(command)
        .map_err(|e| format!("send: {e}"))?;
    read_reply(stream, buf).map_err(|e| format!("reply: {e}"))
}

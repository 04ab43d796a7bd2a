//! Load generator for benchmarks (hidden `__loadgen` subcommand): C simulated lab PCs that each
//! complete the real handshake and stream N events through real sealed frames, in batches as
//! a real client does, as fast as the server acknowledges them (or paced with `--rate`).
//! Reports, as one JSON line, how long it took until the server had acknowledged (= written to
//! its files) every event. With `--stamp` each event carries its send time, so the benchmark
//! can measure transport latency from the server's files.

use crate::cli::LoadgenArgs;
use crate::client::link::{Identity, Link, Trust};
use crate::error::{Error, Result};
use crate::event::EventKind;
use crate::poll::{self, PollSet};
use crate::protocol::SessionId;
use crate::protocol::message::{BatchEncoder, Message};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A representative event detail (a new-flow line, about 60 bytes like the real ones).
const DETAIL: &str = "new tcp 10.0.0.5:51234 -> 142.250.1.1:443 flags=S";

/// Idle time after which a simulated client sends a heartbeat, well inside the server's 2.5 s
/// silence limit (a real client does the same).
const HEARTBEAT: Duration = Duration::from_millis(500);
/// Most events sent on one connection per pass, so every connection gets data early.
const PER_PASS: u64 = 1024;
/// Longest poll wait; shorter when a paced event falls due sooner.
const MAX_WAIT: Duration = Duration::from_millis(100);

/// Parses `--rate`: a positive, finite number of events per second.
pub fn parse_rate(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!(
            "'{s}' is not a positive number of events per second"
        )),
    }
}

struct Sim {
    link: Link,
    next: u64,
    acked: u64,
    /// Everything acknowledged and Bye sent: the connection is no longer polled.
    finished: bool,
}

/// Sends a heartbeat on every connection that has been quiet for [`HEARTBEAT`].
fn keep_alive(sims: &mut [Sim], now: Instant) -> Result<()> {
    for s in sims
        .iter_mut()
        .filter(|s| !s.finished && s.link.idle_tx_for(now) >= HEARTBEAT)
    {
        s.link
            .send(&Message::Heartbeat)
            .map_err(|e| Error::Runtime(format!("heartbeat: {e}")))?;
    }
    Ok(())
}

/// Microseconds since the Unix epoch, now (the `--stamp` value).
fn now_us() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0)
}

/// How many events may have been sent `elapsed` after the start: all of them unpaced, else
/// `rate` per second (the first one at once).
fn due(rate: Option<f64>, elapsed: Duration, total: u64) -> u64 {
    match rate {
        None => total,
        Some(r) => ((elapsed.as_secs_f64() * r) as u64 + 1).min(total),
    }
}

/// Runs `proctor __loadgen`.
pub fn run(args: &LoadgenArgs) -> Result<()> {
    let key = crate::keyfile::load(&args.key)?;
    let session = SessionId::from_hex(&args.session)
        .ok_or_else(|| Error::Usage("--session must be 32 hex digits".into()))?;
    let trust = Trust {
        key,
        server_public: None,
    };
    let mut sims = Vec::with_capacity(args.conns);
    for i in 0..args.conns {
        let me = Identity {
            hostname: format!("pc{i:04}"),
            instance: crate::crypto::random(),
        };
        let (link, next) = Link::connect(args.server, &trust, session, &me, Duration::from_secs(5))
            .map_err(|e| Error::Runtime(format!("connection {i}: {e}")))?;
        sims.push(Sim {
            link,
            next,
            acked: next - 1,
            finished: false,
        });
        keep_alive(&mut sims, Instant::now())?;
    }
    let per = args.events;
    let total = per * args.conns as u64;
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(args.timeout);
    let mut set = PollSet::new();
    let window = args.window.max(1);
    let mut batch = BatchEncoder::new();
    let mut detail = String::with_capacity(DETAIL.len() + 24);
    // Events sealed so far over all connections (paced against `--rate`).
    let mut sent: u64 = 0;
    loop {
        let mut done = true;
        let mut allowed = due(args.rate, start.elapsed(), total).saturating_sub(sent);
        for s in sims.iter_mut().filter(|s| !s.finished) {
            // Keep up to `window` events in flight per connection, like a client with a backlog,
            // sent as batches of as many events as fit one frame.
            let mut budget = PER_PASS.min(allowed);
            while s.next <= per && s.next - s.acked <= window && budget > 0 {
                let ts_ms = crate::timefmt::now_ms();
                detail.clear();
                detail.push_str(DETAIL);
                if args.stamp {
                    use std::fmt::Write;
                    let _ = write!(detail, " t={}", now_us());
                }
                if !batch.push(s.next, ts_ms, EventKind::Net, detail.as_bytes()) {
                    s.link
                        .send_body(&batch.take())
                        .map_err(|e| Error::Runtime(format!("send: {e}")))?;
                    continue;
                }
                budget -= 1;
                allowed -= 1;
                sent += 1;
                s.next += 1;
            }
            if !batch.is_empty() {
                s.link
                    .send_body(&batch.take())
                    .map_err(|e| Error::Runtime(format!("send: {e}")))?;
            }
            if s.acked < per {
                done = false;
            } else {
                // All written: say goodbye like a client at the end of a session.
                s.link
                    .send(&Message::Bye { last_seq: per })
                    .map_err(|e| Error::Runtime(format!("bye: {e}")))?;
                let _ = s.link.flush();
                s.finished = true;
            }
        }
        keep_alive(&mut sims, Instant::now())?;
        if done {
            break;
        }
        if Instant::now() >= deadline {
            return Err(Error::Runtime(
                "timed out before every event was acknowledged".into(),
            ));
        }
        // Paced: wake when the next event is due (unless acks or writes come first).
        let wait = match args.rate {
            Some(r) if sent < total => {
                let next_due = Duration::from_secs_f64(sent as f64 / r);
                next_due.saturating_sub(start.elapsed()).min(MAX_WAIT)
            }
            _ => MAX_WAIT,
        };
        set.clear();
        let live: Vec<usize> = (0..sims.len()).filter(|&i| !sims[i].finished).collect();
        for &i in &live {
            let s = &sims[i];
            set.push(
                s.link.fd(),
                if s.link.wants_write() {
                    poll::IN | poll::OUT
                } else {
                    poll::IN
                },
            );
        }
        set.wait(wait).map_err(|e| Error::io("poll", e))?;
        let now = Instant::now();
        for (slot, &i) in live.iter().enumerate() {
            let s = &mut sims[i];
            if set.revents(slot) & poll::OUT != 0 {
                s.link
                    .flush()
                    .map_err(|e| Error::Runtime(format!("flush: {e}")))?;
            }
            if set.revents(slot) & (poll::IN | poll::ERR_OR_HUP) != 0 {
                for m in s
                    .link
                    .receive(now)
                    .map_err(|e| Error::Runtime(format!("receive: {e}")))?
                {
                    if let Message::Ack { seq } = m {
                        s.acked = s.acked.max(seq);
                    }
                }
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{{\"conns\":{},\"events\":{total},\"seconds\":{secs:.3},\"events_per_s\":{:.0}}}",
        args.conns,
        total as f64 / secs
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacing_allows_rate_times_elapsed_and_never_more_than_all() {
        assert_eq!(due(None, Duration::ZERO, 500), 500);
        assert_eq!(due(Some(100.0), Duration::ZERO, 500), 1);
        assert_eq!(due(Some(100.0), Duration::from_millis(995), 500), 100);
        assert_eq!(due(Some(100.0), Duration::from_secs(60), 500), 500);
        assert!(parse_rate("0").is_err() && parse_rate("-3").is_err());
        assert!(parse_rate("inf").is_err() && parse_rate("x").is_err());
        assert_eq!(parse_rate("2500"), Ok(2500.0));
    }
}

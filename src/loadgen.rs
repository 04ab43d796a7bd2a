//! Load generator for benchmarks (hidden `__loadgen` subcommand): C simulated lab PCs that each
//! complete the real handshake and stream N events through real sealed frames, as fast as the
//! server acknowledges them. Reports, as one JSON line, how long it took until the server had
//! acknowledged (= written to its files) every event.

use crate::cli::LoadgenArgs;
use crate::client::link::{Identity, Link, Trust};
use crate::error::{Error, Result};
use crate::event::EventKind;
use crate::poll::{self, PollSet};
use crate::protocol::SessionId;
use crate::protocol::message::Message;
use std::time::{Duration, Instant};

/// A representative event detail (a new-flow line, about 60 bytes like the real ones).
const DETAIL: &str = "new tcp 10.0.0.5:51234 -> 142.250.1.1:443 flags=S";

/// Idle time after which a simulated client sends a heartbeat, well inside the server's 2.5 s
/// silence limit (a real client does the same).
const HEARTBEAT: Duration = Duration::from_millis(500);
/// Most events sealed for one connection per pass, so every connection gets data early.
const PER_PASS: u64 = 256;

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
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(args.timeout);
    let mut set = PollSet::new();
    let detail = DETAIL.as_bytes().to_vec();
    let window = args.window.max(1);
    loop {
        let mut done = true;
        for s in sims.iter_mut().filter(|s| !s.finished) {
            // Keep up to `window` events in flight per connection, like a client with a backlog.
            let mut budget = PER_PASS;
            while s.next <= per && s.next - s.acked <= window && budget > 0 {
                budget -= 1;
                let m = Message::Event {
                    seq: s.next,
                    ts_ms: crate::timefmt::now_ms(),
                    kind: EventKind::Net,
                    detail: detail.clone(),
                };
                s.link
                    .send(&m)
                    .map_err(|e| Error::Runtime(format!("send: {e}")))?;
                s.next += 1;
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
        set.wait(Duration::from_millis(100))
            .map_err(|e| Error::io("poll", e))?;
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
    let total = per * args.conns as u64;
    println!(
        "{{\"conns\":{},\"events\":{total},\"seconds\":{secs:.3},\"events_per_s\":{:.0}}}",
        args.conns,
        total as f64 / secs
    );
    Ok(())
}

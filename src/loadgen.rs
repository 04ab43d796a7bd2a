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

struct Sim {
    link: Link,
    next: u64,
    acked: u64,
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
        });
    }
    let per = args.events;
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(args.timeout);
    let mut set = PollSet::new();
    let detail = DETAIL.as_bytes().to_vec();
    let window = args.window.max(1);
    loop {
        let mut done = true;
        for s in sims.iter_mut() {
            // Keep up to `window` events in flight per connection, like a client with a backlog.
            while s.next <= per && s.next - s.acked <= window {
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
            }
        }
        if done {
            break;
        }
        if Instant::now() >= deadline {
            return Err(Error::Runtime(
                "timed out before every event was acknowledged".into(),
            ));
        }
        set.clear();
        for s in &sims {
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
        for (i, s) in sims.iter_mut().enumerate() {
            if set.revents(i) & poll::OUT != 0 {
                s.link
                    .flush()
                    .map_err(|e| Error::Runtime(format!("flush: {e}")))?;
            }
            if set.revents(i) & (poll::IN | poll::ERR_OR_HUP) != 0 {
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

//! `--dump-state FILE`: what the window shows, written as JSON when the program quits, so tests
//! (and anyone scripting the window) can check the table, the highlight, the Start/Stop control
//! and the message bar without reading pixels. Hand-written JSON: a few fields, one escaper.

use super::model::{Column, Model, SortOrder};
use crate::timefmt::rfc3339_ms;
use std::fmt::Write;

/// The parts of the window's state that live in widgets, not in the [`Model`].
#[derive(Debug, Clone)]
pub struct ViewState {
    /// The Start/Stop control's label.
    pub button: String,
    /// Whether the control can be pressed.
    pub button_active: bool,
    /// The headline under the control.
    pub headline: String,
    /// Text of the message bar, if shown.
    pub message: Option<String>,
    /// The table's order.
    pub order: SortOrder,
    /// The machine selected in the table (filters the event view), as `host addr`.
    pub selected: Option<String>,
    /// The text filter box.
    pub filter: String,
    /// Event lines shown in the view now.
    pub lines_shown: usize,
    /// The view shows the newest line (it follows new events).
    pub following: bool,
    /// The log directory shown in the status bar.
    pub log_dir: String,
    /// Longest time a note from the core waited before the window applied it.
    pub max_note_delay_ms: u64,
    /// Longest turn of the window's loop (applying a batch and redrawing).
    pub max_turn_ms: u64,
}

pub use crate::flows::json_str;

fn opt_str(s: Option<&str>) -> String {
    s.map(json_str).unwrap_or_else(|| "null".into())
}

fn opt_num(n: Option<u64>) -> String {
    n.map(|n| n.to_string()).unwrap_or_else(|| "null".into())
}

/// The whole state as a JSON object (machines in the order the table shows them).
pub fn state_json(model: &Model, view: &ViewState, now_ms: u64) -> String {
    let (connected, lost, stopped) = model.counts();
    let mut s = String::from("{\n");
    let _ = writeln!(s, "  \"phase\": {},", json_str(model.phase.as_str()));
    let _ = writeln!(s, "  \"button\": {},", json_str(&view.button));
    let _ = writeln!(s, "  \"button_active\": {},", view.button_active);
    let _ = writeln!(s, "  \"headline\": {},", json_str(&view.headline));
    let _ = writeln!(s, "  \"message\": {},", opt_str(view.message.as_deref()));
    match &model.session {
        Some(si) => {
            let _ = writeln!(
                s,
                "  \"session\": {{\"id\": {}, \"started\": {}, \"dir\": {}, \"stopped\": {}}},",
                json_str(&si.id),
                json_str(&rfc3339_ms(si.started_ms)),
                json_str(&si.dir.display().to_string()),
                opt_str(si.stopped_ms.map(rfc3339_ms).as_deref())
            );
        }
        None => s.push_str("  \"session\": null,\n"),
    }
    let _ = writeln!(s, "  \"log_dir\": {},", json_str(&view.log_dir));
    let _ = writeln!(
        s,
        "  \"connected\": {connected},\n  \"lost\": {lost},\n  \"stopped\": {stopped},"
    );
    let _ = writeln!(s, "  \"events_total\": {},", model.events_total);
    let _ = writeln!(
        s,
        "  \"events_per_second\": {},",
        model.events_per_second(now_ms)
    );
    let _ = writeln!(s, "  \"refused\": {},", model.refused);
    let _ = writeln!(s, "  \"policy\": {},", opt_str(model.policy.as_deref()));
    let _ = writeln!(
        s,
        "  \"policy_error\": {},",
        opt_str(model.policy_error.as_deref())
    );
    let _ = writeln!(s, "  \"flagged_total\": {},", model.flagged_total);
    let _ = writeln!(s, "  \"policy_reloads\": {},", model.policy_reloads);
    let _ = writeln!(s, "  \"order\": {},", json_str(&view.order.describe()));
    let _ = writeln!(s, "  \"selected\": {},", opt_str(view.selected.as_deref()));
    let _ = writeln!(s, "  \"filter\": {},", json_str(&view.filter));
    let _ = writeln!(s, "  \"lines_in_memory\": {},", model.lines().count());
    let _ = writeln!(s, "  \"lines_shown\": {},", view.lines_shown);
    let _ = writeln!(s, "  \"following\": {},", view.following);
    let _ = writeln!(s, "  \"core_exited\": {},", model.exited);
    let _ = writeln!(
        s,
        "  \"max_note_delay_ms\": {},\n  \"max_turn_ms\": {},",
        view.max_note_delay_ms, view.max_turn_ms
    );
    s.push_str("  \"machines\": [");
    let rows = model.rows(view.order, now_ms);
    for (i, r) in rows.iter().enumerate() {
        s.push_str(if i == 0 { "\n" } else { ",\n" });
        let _ = write!(
            s,
            "    {{\"host\": {}, \"address\": {}, \"state\": {}, \"last_contact_ms\": {}, \
             \"lost_since_ms\": {}, \"last_contact\": {}, \"net_flows\": {}, \"net_events\": {}, \
             \"mount_events\": {}, \"flagged\": {}, \"last_event\": {}, \"highlighted\": {}}}",
            json_str(&r.id.host),
            json_str(&r.id.addr.to_string()),
            json_str(r.state.as_str()),
            r.last_contact_ms,
            opt_num(r.lost_since_ms),
            json_str(&r.cell(Column::LastContact, now_ms)),
            r.net_flows,
            r.net_events,
            r.mount_events,
            r.flagged,
            json_str(&r.last_event),
            r.highlighted()
        );
    }
    if !rows.is_empty() {
        s.push('\n');
        s.push_str("  ");
    }
    s.push_str("]\n}\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventKind;
    use crate::server::core::Note;
    use crate::server::registry::{ClientRecord, ClientState};
    use crate::server::storage::ClientId;

    #[test]
    fn escapes_json_strings() {
        assert_eq!(json_str("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
        assert_eq!(json_str("ü ▲"), "\"ü ▲\"");
    }

    #[test]
    fn dumps_machines_with_counts_and_highlight() {
        let mut m = Model::default();
        let rec = ClientRecord {
            id: ClientId {
                host: "pc\"1".into(),
                addr: "127.0.0.1".parse().unwrap(),
            },
            state: ClientState::Connected,
            instance: [0; 16],
            written_seq: 1,
            queued_seq: 1,
            last_contact_ms: 7,
            lost_since_ms: None,
            net_events: 0,
            mount_events: 1,
            flagged_events: 2,
            last_event: "mount x".into(),
        };
        m.apply(
            Note::Event {
                client: rec.into(),
                seq: 1,
                ts_ms: 0,
                kind: EventKind::Mount,
                detail: "x".into(),
            },
            0,
        );
        let view = ViewState {
            button: "Start session".into(),
            button_active: true,
            headline: "h".into(),
            message: None,
            order: SortOrder::Triage,
            selected: None,
            filter: String::new(),
            lines_shown: 1,
            following: true,
            log_dir: "/tmp/l".into(),
            max_note_delay_ms: 3,
            max_turn_ms: 4,
        };
        let j = state_json(&m, &view, 0);
        assert!(j.contains("\"host\": \"pc\\\"1\""), "{j}");
        assert!(j.contains("\"mount_events\": 1"));
        assert!(j.contains("\"flagged\": 2"), "{j}");
        assert!(j.contains("\"highlighted\": true"));
        assert!(j.contains("\"message\": null"));
        assert!(j.contains("\"session\": null"));
        assert!(j.contains("\"max_turn_ms\": 4"));
        assert_eq!(j.matches('{').count(), j.matches('}').count());
    }
}

//! The live event view: a read-only text display whose lines are coloured by kind (network,
//! mount, status, warning, session, and flagged by the policy whatever their kind) through a style buffer. New lines are appended in batches;
//! the view keeps at most [`MAX_LINES`](super::model::MAX_LINES) lines, and follows the newest
//! line only while the user has not scrolled up.

use super::model::{EventLine, LineFilter, LineKind, MAX_LINES, Model};
use fltk::enums::{Color, Font};
use fltk::prelude::*;
use fltk::text::{PositionType, StyleTableEntry, TextBuffer, TextDisplay};
use std::collections::VecDeque;

const TEXT_SIZE: i32 = 13;

/// Colour key shown next to the view's title: (word, colour).
pub const LEGEND: [(&str, Color); 6] = [
    ("net", Color::from_rgb(20, 70, 170)),
    ("mount", Color::from_rgb(190, 90, 0)),
    ("status", Color::from_rgb(105, 105, 105)),
    ("warning", Color::from_rgb(200, 0, 0)),
    ("session", Color::from_rgb(0, 120, 60)),
    ("flagged", FLAGGED_COLOR),
];

/// Colour of events the policy flagged (in the view, the legend and the table's count).
pub const FLAGGED_COLOR: Color = Color::from_rgb(170, 0, 150);

fn style_char(kind: LineKind) -> u8 {
    match kind {
        LineKind::Net => b'A',
        LineKind::Mount => b'B',
        LineKind::Status => b'C',
        LineKind::Warning => b'D',
        LineKind::Session => b'E',
        LineKind::Flagged => b'F',
    }
}

fn styles() -> Vec<StyleTableEntry> {
    let fonts = [
        Font::Courier,
        Font::CourierBold,
        Font::Courier,
        Font::CourierBold,
        Font::CourierBold,
        Font::CourierBold,
    ];
    LEGEND
        .iter()
        .zip(fonts)
        .map(|((_, color), font)| StyleTableEntry {
            color: *color,
            font,
            size: TEXT_SIZE,
        })
        .collect()
}

/// The event view widget and what it currently shows.
pub struct EventsView {
    disp: TextDisplay,
    text: TextBuffer,
    style: TextBuffer,
    /// Byte length (with newline) of every shown line, oldest first.
    lens: VecDeque<usize>,
    /// Number of the newest model line already considered.
    seen: u64,
    cap: usize,
}

impl EventsView {
    /// Creates the view in the current group.
    pub fn new() -> EventsView {
        let text = TextBuffer::default();
        let style = TextBuffer::default();
        let mut disp = TextDisplay::default();
        disp.set_buffer(text.clone());
        disp.set_highlight_data(style.clone(), styles());
        disp.set_text_font(Font::Courier);
        disp.set_text_size(TEXT_SIZE);
        disp.show_cursor(false);
        disp.set_scrollbar_size(16);
        EventsView {
            disp,
            text,
            style,
            lens: VecDeque::new(),
            seen: 0,
            cap: MAX_LINES,
        }
    }

    /// Lines shown now.
    pub fn shown(&self) -> usize {
        self.lens.len()
    }

    /// True when the newest line is on screen (so new lines scroll into view).
    pub fn at_bottom(&self) -> bool {
        if self.lens.is_empty() || !self.disp.visible_r() {
            return true;
        }
        let pos = self.disp.xy_to_position(
            self.disp.x() + self.disp.w() / 2,
            self.disp.y() + self.disp.h() - 2,
            PositionType::Cursor,
        );
        self.text.count_lines(pos, self.text.length()) <= 1
    }

    fn scroll_to_end(&mut self) {
        self.disp.set_insert_position(self.text.length());
        self.disp.show_insert_position();
    }

    /// Shows the model's lines that pass `filter`, from scratch (after a filter change).
    pub fn rebuild(&mut self, model: &Model, filter: &LineFilter) {
        self.text.set_text("");
        self.style.set_text("");
        self.lens.clear();
        self.seen = 0;
        self.append_new(model, filter);
        self.scroll_to_end();
    }

    /// Appends the model's lines added since the last call that pass `filter`, trims the view
    /// to its bound, and scrolls to the end unless the user scrolled up.
    pub fn append_new(&mut self, model: &Model, filter: &LineFilter) {
        let follow = self.at_bottom();
        let fresh: Vec<&EventLine> = model
            .lines_after(self.seen)
            .filter(|l| filter.matches(l))
            .collect();
        self.seen = model.last_line_no();
        if fresh.is_empty() {
            return;
        }
        let skip = fresh.len().saturating_sub(self.cap);
        let mut text = String::new();
        let mut style = Vec::new();
        for l in &fresh[skip..] {
            text.push_str(&l.text);
            text.push('\n');
            let n = l.text.len() + 1;
            style.resize(style.len() + n, style_char(l.kind));
            self.lens.push_back(n);
        }
        self.text.append(&text);
        // The style bytes are ASCII letters, one per text byte.
        self.style.append(&String::from_utf8_lossy(&style));
        let mut cut = 0;
        while self.lens.len() > self.cap {
            cut += self.lens.pop_front().unwrap_or(0);
        }
        if cut > 0 {
            let cut = i32::try_from(cut).unwrap_or(i32::MAX);
            self.text.remove(0, cut);
            self.style.remove(0, cut);
        }
        if follow {
            self.scroll_to_end();
        }
    }
}

impl Default for EventsView {
    fn default() -> Self {
        Self::new()
    }
}

//! The machine table: one row per machine of the session, drawn from a list of prepared rows
//! ([`RowView`]). Lost rows are red, rows with an event the policy flagged purple, rows with a
//! mount event amber, the selected row framed in blue. A click on a column title or a row only
//! sends a [`Message`]; the loop re-sorts and hands the table new rows.

use super::Message;
use super::model::{Column, Flag};
use crate::server::registry::ClientState;
use fltk::app::Sender;
use fltk::draw;
use fltk::enums::{Color, Event, Font, FrameType};
use fltk::prelude::*;
use fltk::table::{Table, TableContext};
use std::cell::RefCell;
use std::rc::Rc;

const FONT_SIZE: i32 = 14;
/// Widths of every column but the last, which takes the rest.
pub const WIDTHS: [i32; 7] = [170, 120, 100, 180, 100, 95, 90];

/// What one row shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowView {
    /// Cell texts, one per [`Column::ALL`] entry.
    pub cells: Vec<String>,
    /// Highlight.
    pub flag: Flag,
    /// For the colour of the state cell.
    pub state: ClientState,
    /// Selected (filters the event view).
    pub selected: bool,
}

#[derive(Default)]
struct Data {
    rows: Vec<RowView>,
    titles: Vec<String>,
}

/// The table widget and the rows it draws.
pub struct MachineTable {
    table: Table,
    data: Rc<RefCell<Data>>,
    width: i32,
}

fn row_bg(flag: Flag, row: i32) -> Color {
    match flag {
        Flag::Lost => Color::from_rgb(255, 205, 205),
        Flag::Flagged => Color::from_rgb(246, 212, 242),
        Flag::Mount => Color::from_rgb(255, 228, 160),
        Flag::Normal if row % 2 == 1 => Color::from_rgb(246, 247, 250),
        Flag::Normal => Color::White,
    }
}

fn state_color(s: ClientState) -> Color {
    match s {
        ClientState::Connected => Color::from_rgb(0, 115, 40),
        ClientState::Lost => Color::from_rgb(190, 0, 0),
        ClientState::Stopped => Color::from_rgb(100, 100, 100),
    }
}

/// Shortens `s` with an ellipsis so it fits `w` pixels in the current font.
fn fit(s: &str, w: i32) -> String {
    if draw::width(s) as i32 <= w {
        return s.to_string();
    }
    let mut end = s.len();
    while end > 0 {
        end -= 1;
        while end > 0 && !s.is_char_boundary(end) {
            end -= 1;
        }
        let t = format!("{}…", &s[..end]);
        if draw::width(&t) as i32 <= w {
            return t;
        }
    }
    String::new()
}

fn text_in(s: &str, x: i32, y: i32, w: i32, h: i32, right: bool) {
    let s = fit(s, w - 12);
    let ty = y + (h + draw::height()) / 2 - draw::descent();
    let tx = if right {
        x + w - 8 - draw::width(&s) as i32
    } else {
        x + 6
    };
    // draw_text does not interpret '@' symbols, so host names print as they are.
    draw::draw_text(&s, tx, ty);
}

fn draw_header(title: &str, x: i32, y: i32, w: i32, h: i32) {
    draw::push_clip(x, y, w, h);
    draw::draw_box(
        FrameType::ThinUpBox,
        x,
        y,
        w,
        h,
        Color::from_rgb(226, 230, 238),
    );
    draw::set_draw_color(Color::from_rgb(30, 30, 30));
    draw::set_font(Font::HelveticaBold, FONT_SIZE);
    text_in(title, x, y, w, h, false);
    draw::pop_clip();
}

fn draw_cell(r: &RowView, row: i32, col: i32, x: i32, y: i32, w: i32, h: i32) {
    let Some(column) = Column::from_index(col) else {
        return;
    };
    draw::push_clip(x, y, w, h);
    draw::set_draw_color(row_bg(r.flag, row));
    draw::draw_rectf(x, y, w, h);
    draw::set_draw_color(Color::from_rgb(215, 218, 224));
    draw::draw_line(x, y + h - 1, x + w, y + h - 1);
    let (font, color) = match column {
        Column::State => (
            if r.state == ClientState::Lost {
                Font::HelveticaBold
            } else {
                Font::Helvetica
            },
            state_color(r.state),
        ),
        Column::Host => (Font::HelveticaBold, Color::from_rgb(20, 20, 20)),
        Column::Mounts if r.flag == Flag::Mount => {
            (Font::HelveticaBold, Color::from_rgb(150, 60, 0))
        }
        Column::Flagged if r.cells.get(col as usize).is_some_and(|c| c != "0") => {
            (Font::HelveticaBold, super::events_view::FLAGGED_COLOR)
        }
        _ => (Font::Helvetica, Color::from_rgb(20, 20, 20)),
    };
    draw::set_font(font, FONT_SIZE);
    draw::set_draw_color(color);
    let text = r.cells.get(col as usize).map(String::as_str).unwrap_or("");
    text_in(text, x, y, w, h, column.numeric());
    if r.selected {
        draw::set_draw_color(Color::from_rgb(30, 90, 200));
        draw::draw_rectf(x, y, w, 2);
        draw::draw_rectf(x, y + h - 2, w, 2);
        if col == 0 {
            draw::draw_rectf(x, y, 4, h);
        }
    }
    draw::pop_clip();
}

impl MachineTable {
    /// Creates the table in the current group; clicks are sent through `tx`.
    pub fn new(tx: Sender<Message>) -> MachineTable {
        let mut table = Table::default();
        table.set_cols(Column::ALL.len() as i32);
        table.set_rows(0);
        table.set_col_header(true);
        table.set_col_header_height(super::layout::HEADER_H);
        table.set_row_height_all(super::layout::ROW_H);
        table.set_col_resize(true);
        table.set_color(Color::White);
        table.set_scrollbar_size(16);
        table.end();
        let data = Rc::new(RefCell::new(Data {
            rows: Vec::new(),
            titles: Column::ALL.iter().map(|c| c.title().to_string()).collect(),
        }));
        let d = data.clone();
        table.draw_cell(move |_t, ctx, row, col, x, y, w, h| {
            let Ok(d) = d.try_borrow() else {
                return;
            };
            match ctx {
                TableContext::ColHeader => {
                    let title = usize::try_from(col)
                        .ok()
                        .and_then(|c| d.titles.get(c))
                        .map(String::as_str)
                        .unwrap_or("");
                    draw_header(title, x, y, w, h);
                }
                TableContext::Cell => {
                    if let Some(r) = usize::try_from(row).ok().and_then(|i| d.rows.get(i)) {
                        draw_cell(r, row, col, x, y, w, h);
                    }
                }
                _ => {}
            }
        });
        table.set_callback(move |t| {
            if fltk::app::event() != Event::Push {
                return;
            }
            match t.callback_context() {
                TableContext::ColHeader => {
                    if let Some(c) = Column::from_index(t.callback_col()) {
                        tx.send(Message::SortBy(c));
                    }
                }
                TableContext::Cell => tx.send(Message::SelectRow(t.callback_row())),
                _ => {}
            }
        });
        let mut mt = MachineTable {
            table,
            data,
            width: 0,
        };
        mt.fit_columns();
        mt
    }

    /// Gives the last column the width the others leave (call after a resize).
    pub fn fit_columns(&mut self) {
        let w = self.table.w();
        if w == self.width {
            return;
        }
        self.width = w;
        for (i, cw) in WIDTHS.iter().enumerate() {
            self.table.set_col_width(i as i32, *cw);
        }
        let used: i32 = WIDTHS.iter().sum();
        let last = (w - used - self.table.scrollbar_size() - 4).max(200);
        self.table.set_col_width(WIDTHS.len() as i32, last);
    }

    /// Replaces the rows and column titles and redraws.
    pub fn set_rows(&mut self, rows: Vec<RowView>, titles: Vec<String>) {
        let n = rows.len() as i32;
        if let Ok(mut d) = self.data.try_borrow_mut() {
            d.rows = rows;
            d.titles = titles;
        }
        if self.table.rows() != n {
            self.table.set_rows(n);
            self.table.set_row_height_all(super::layout::ROW_H);
        }
        self.fit_columns();
        self.table.redraw();
    }
}

//! Builds the window's widgets and fixes where they are: a top row (Start/Stop control, the
//! session headline, ports and key), a message bar for problems, the machine table, the event
//! view with its filter row, and the status bar. Callbacks here only send a [`Message`]; the
//! positions that tests click on are public constants.

use super::Message;
use super::events_view::EventsView;
use super::table::MachineTable;
use fltk::app::Sender;
use fltk::button::Button;
use fltk::enums::{Align, CallbackTrigger, Color, Event, Font, FrameType};
use fltk::frame::Frame;
use fltk::group::Flex;
use fltk::input::Input;
use fltk::output::Output;
use fltk::prelude::*;
use fltk::window::Window;

/// Initial window width.
pub const WIN_W: i32 = 1200;
/// Initial window height.
pub const WIN_H: i32 = 760;
/// Space around and between the parts.
pub const MARGIN: i32 = 10;
/// Width of the Start/Stop control.
pub const BUTTON_W: i32 = 180;
/// Height of the top row (and of the Start/Stop control).
pub const TOP_H: i32 = 44;
/// Where to click to press Start/Stop, relative to the window (for `xdotool` in tests).
pub const START_STOP_CENTER: (i32, i32) = (MARGIN + BUTTON_W / 2, MARGIN + TOP_H / 2);
/// Space between the rows of the window.
pub const PAD: i32 = 8;
/// Height of the "Machines" title row.
pub const MACHINES_H: i32 = 22;
/// Height of the event view's title and filter row.
pub const EVENTS_ROW_H: i32 = 28;
/// Height of the status bar.
pub const BAR_H: i32 = 28;
/// Space between the widgets of the filter row.
pub const ROW_PAD: i32 = 6;
/// Width of the filter box.
pub const FILTER_W: i32 = 240;
/// Width of the "All machines" button.
pub const SHOW_ALL_W: i32 = 120;
/// Height of the table's title row.
pub const HEADER_H: i32 = 28;
/// Height of a table row.
pub const ROW_H: i32 = 26;

// Where things are in a window of the initial size without the message bar (tests click there).
// The table and the event view share the flexible height equally.
const FLEX_H: i32 = WIN_H - 2 * MARGIN - TOP_H - MACHINES_H - EVENTS_ROW_H - BAR_H - 5 * PAD;
const TABLE_Y: i32 = MARGIN + TOP_H + PAD + MACHINES_H + PAD;
const EVENTS_ROW_Y: i32 = TABLE_Y + FLEX_H / 2 + PAD;
/// The table's frame, in pixels.
const TABLE_BORDER: i32 = 2;

/// Centre of column `col`'s title in the machine table (initial window size).
pub fn header_center(col: usize) -> (i32, i32) {
    let left: i32 = super::table::WIDTHS.iter().take(col).sum();
    let w = super::table::WIDTHS.get(col).copied().unwrap_or(200);
    (
        MARGIN + TABLE_BORDER + left + w / 2,
        TABLE_Y + TABLE_BORDER + HEADER_H / 2,
    )
}

/// Centre of the first cell of table row `row` (initial window size).
pub fn row_center(row: i32) -> (i32, i32) {
    (
        MARGIN + TABLE_BORDER + 40,
        TABLE_Y + TABLE_BORDER + HEADER_H + row * ROW_H + ROW_H / 2,
    )
}

/// Centre of the filter box (initial window size).
pub fn filter_center() -> (i32, i32) {
    (
        WIN_W - MARGIN - SHOW_ALL_W - ROW_PAD - FILTER_W / 2,
        EVENTS_ROW_Y + EVENTS_ROW_H / 2,
    )
}

/// Centre of the event view (initial window size).
pub fn events_center() -> (i32, i32) {
    (WIN_W / 2, EVENTS_ROW_Y + EVENTS_ROW_H + PAD + FLEX_H / 4)
}

/// Width of the "Reload policy" button.
pub const RELOAD_W: i32 = 110;
/// Widths of the status bar's counts and rate labels (right of the reload button).
const COUNTS_W: i32 = 250;
const RATE_W: i32 = 130;
/// Space between the status bar's parts.
const BAR_PAD: i32 = 8;

/// Centre of the "Reload policy" button (initial window size).
pub fn reload_center() -> (i32, i32) {
    (
        WIN_W - MARGIN - RATE_W - BAR_PAD - COUNTS_W - BAR_PAD - RELOAD_W / 2,
        WIN_H - MARGIN - BAR_H / 2,
    )
}

/// Colour of the message bar.
pub const PROBLEM_BG: (u8, u8, u8) = (190, 30, 30);

/// The widgets the loop updates.
pub struct Ui {
    /// The main window.
    pub win: Window,
    /// The vertical layout (re-laid out when the message bar appears or goes).
    pub outer: Flex,
    /// The Start/Stop control.
    pub button: Button,
    /// Where the session stands.
    pub headline: Frame,
    /// Ports, announcement targets, key fingerprint.
    pub setup: Frame,
    /// The message bar for problems (hidden when there is none).
    pub banner: Flex,
    /// The message bar's text.
    pub banner_text: Frame,
    /// "Machines" title with counts.
    pub machines_title: Frame,
    /// The machine table.
    pub table: MachineTable,
    /// Title of the event view (says which machine it shows).
    pub events_title: Frame,
    /// The text filter box.
    pub filter: Input,
    /// "All machines" button.
    pub show_all: Button,
    /// The event view.
    pub events: EventsView,
    /// Status bar: session id and start.
    pub session_status: Frame,
    /// Status bar: the log directory (selectable, copyable).
    pub log_dir: Output,
    /// Status bar: copies the log directory to the clipboard.
    pub copy: Button,
    /// Status bar: reads the policy file again (inactive without `--policy`).
    pub reload: Button,
    /// Status bar: machines connected / lost.
    pub counts: Frame,
    /// Status bar: events per second.
    pub rate: Frame,
}

fn label(text: &str, size: i32, font: Font) -> Frame {
    let mut f = Frame::default().with_label(text);
    f.set_label_size(size);
    f.set_label_font(font);
    f.set_align(Align::Left | Align::Inside | Align::Clip);
    f
}

fn legend(text: &str, color: Color) -> Frame {
    let mut f = label(text, 13, Font::CourierBold);
    f.set_label_color(color);
    f.set_align(Align::Center | Align::Inside);
    f
}

/// Builds the window; `title` names it, `setup_info` fills the top-right corner.
pub fn build(tx: Sender<Message>, title: &str, setup_info: &str) -> Ui {
    let mut win = Window::default()
        .with_size(WIN_W, WIN_H)
        .with_label(title)
        .center_screen();
    win.set_xclass("proctor");
    win.set_color(Color::from_rgb(244, 245, 247));

    let mut outer = Flex::default_fill().column();
    outer.set_margin(MARGIN);
    outer.set_pad(PAD);

    // Top row: control, headline, setup.
    let mut top = Flex::default().row();
    top.set_pad(14);
    let mut button = Button::default().with_label("Start session");
    button.set_label_size(16);
    button.set_label_font(Font::HelveticaBold);
    button.set_color(Color::from_rgb(46, 125, 50));
    button.set_label_color(Color::White);
    button.set_tooltip(
        "Start announces a session to every lab PC; Stop ends it and closes the files",
    );
    button.emit(tx, Message::StartStop);
    top.fixed(&button, BUTTON_W);
    let headline = label(
        "No session running. Press Start to announce one to the lab.",
        17,
        Font::HelveticaBold,
    );
    let mut setup = label(&label_safe(setup_info), 12, Font::Helvetica);
    setup.set_label_color(Color::from_rgb(90, 90, 90));
    setup.set_align(Align::Right | Align::Inside | Align::Clip);
    top.fixed(&setup, 430);
    top.end();
    outer.fixed(&top, TOP_H);

    // Message bar for problems.
    let mut banner = Flex::default().row();
    banner.set_frame(FrameType::FlatBox);
    let (r, g, b) = PROBLEM_BG;
    banner.set_color(Color::from_rgb(r, g, b));
    banner.set_margins(12, 4, 12, 4);
    let mut banner_text = Frame::default();
    banner_text.set_label_color(Color::White);
    banner_text.set_label_font(Font::HelveticaBold);
    banner_text.set_label_size(15);
    banner_text.set_align(Align::Left | Align::Inside | Align::Wrap);
    banner.end();
    outer.fixed(&banner, 60);
    banner.hide();

    // Machine table.
    let mut mrow = Flex::default().row();
    let machines_title = label("Machines", 15, Font::HelveticaBold);
    let mut hint = label(
        "red: lost   purple: flagged by the policy   amber: mount event   (these sort to the top)  ·  click a title to sort, a row to see its events",
        12,
        Font::Helvetica,
    );
    hint.set_label_color(Color::from_rgb(90, 90, 90));
    hint.set_align(Align::Right | Align::Inside | Align::Clip);
    mrow.fixed(&machines_title, 260);
    mrow.end();
    outer.fixed(&mrow, MACHINES_H);
    let table = MachineTable::new(tx);

    // Event view title, legend and filter.
    let mut erow = Flex::default().row();
    erow.set_pad(ROW_PAD);
    let events_title = label("Events: all machines", 15, Font::HelveticaBold);
    for (text, color) in super::events_view::LEGEND {
        let l = legend(text, color);
        erow.fixed(&l, 8 * text.len() as i32 + 16);
    }
    let mut flabel = label("Filter:", 13, Font::Helvetica);
    flabel.set_align(Align::Right | Align::Inside);
    erow.fixed(&flabel, 52);
    let mut filter = Input::default();
    filter.set_tooltip("Show only lines containing this text (host, address, port, word)");
    filter.set_trigger(CallbackTrigger::Changed);
    filter.emit(tx, Message::FilterChanged);
    erow.fixed(&filter, FILTER_W);
    let mut show_all = Button::default().with_label("All machines");
    show_all.set_tooltip("Show the events of every machine again");
    show_all.emit(tx, Message::ShowAll);
    show_all.deactivate();
    erow.fixed(&show_all, SHOW_ALL_W);
    erow.end();
    outer.fixed(&erow, EVENTS_ROW_H);
    let events = EventsView::new();

    // Status bar.
    let mut bar = Flex::default().row();
    bar.set_pad(BAR_PAD);
    let session_status = label("No session yet", 13, Font::Helvetica);
    bar.fixed(&session_status, 310);
    let logs_label = label("Logs:", 13, Font::HelveticaBold);
    bar.fixed(&logs_label, 40);
    let mut log_dir = Output::default();
    log_dir.set_text_size(13);
    log_dir.set_tooltip("Where the log files of this session are written (select to copy)");
    let mut copy = Button::default().with_label("Copy path");
    copy.set_tooltip("Copy the log directory to the clipboard");
    copy.emit(tx, Message::CopyLogPath);
    bar.fixed(&copy, 100);
    let mut reload = Button::default().with_label("Reload policy");
    reload.set_tooltip("Read the policy file again (it is also reloaded when it changes)");
    reload.emit(tx, Message::ReloadPolicy);
    reload.deactivate();
    bar.fixed(&reload, RELOAD_W);
    let counts = label("0 connected · 0 lost", 13, Font::HelveticaBold);
    bar.fixed(&counts, COUNTS_W);
    let rate = label("0 events/s", 13, Font::Helvetica);
    bar.fixed(&rate, RATE_W);
    bar.end();
    outer.fixed(&bar, BAR_H);

    outer.end();
    win.end();
    win.make_resizable(true);
    win.size_range(900, 560, 0, 0);
    win.set_callback(move |_| {
        // Escape also calls the window's callback; only the close button closes.
        if fltk::app::event() == Event::Close {
            tx.send(Message::CloseRequested);
        }
    });

    Ui {
        win,
        outer,
        button,
        headline,
        setup,
        banner,
        banner_text,
        machines_title,
        table,
        events_title,
        filter,
        show_all,
        events,
        session_status,
        log_dir,
        copy,
        reload,
        counts,
        rate,
    }
}

/// Makes outside text safe as a widget label: FLTK reads `@` as a symbol and `&` as a
/// shortcut mark; doubling them prints them as they are.
pub fn label_safe(s: &str) -> String {
    s.replace('@', "@@").replace('&', "&&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_escape_symbols() {
        assert_eq!(label_safe("a@b&c"), "a@@b&&c");
    }
}

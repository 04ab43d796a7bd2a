//! [`ServerApp`]: owns the widgets, the [`Model`] and the link to the core, and runs the one
//! loop that touches widgets. Each turn it drains the channel (notes from the core, clicks,
//! timers) into the model, then redraws what changed, at most every [`REFRESH_EVERY`], so the
//! window stays responsive under thousands of events per second.

use super::dump::{ViewState, state_json};
use super::layout::{self, Ui, label_safe};
use super::model::{Column, LineFilter, Model, Phase, SortOrder};
use super::table::RowView;
use super::{GuiOptions, Message};
use crate::error::{Error, Result};
use crate::server::core::{Command, CoreConfig, CoreHandle, Note, ServerCore};
use crate::server::storage::ClientId;
use crate::timefmt::now_ms;
use fltk::app;
use fltk::dialog;
use fltk::enums::Color;
use fltk::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Least time between two redraws while events stream in.
pub const REFRESH_EVERY: Duration = Duration::from_millis(50);
/// Most time spent applying messages before the window gets a chance to redraw.
const DRAIN_BUDGET: Duration = Duration::from_millis(30);
/// Period of the timer that ages "lost" times, updates events/s and checks for signals.
const TICK_SECS: f64 = 0.5;
/// How long closing waits for the core to stop the session before giving up.
const CLOSE_DEADLINE: Duration = Duration::from_secs(20);

/// The invigilator's window: widgets, model, and the link to the core.
pub struct ServerApp {
    app: app::App,
    tx: app::Sender<Message>,
    rx: app::Receiver<Message>,
    core: Option<CoreHandle>,
    core_thread: Option<JoinHandle<()>>,
    fatal: Option<Error>,
    opts: GuiOptions,
    model: Model,
    ui: Ui,
    order: SortOrder,
    row_ids: Vec<ClientId>,
    selected: Option<ClientId>,
    filter: LineFilter,
    dirty: super::model::Changes,
    rebuild_lines: bool,
    banner_shown: bool,
    last_refresh: Instant,
    refresh_pending: bool,
    closing_since: Option<Instant>,
    copied_until: Option<Instant>,
    quit: bool,
    signals: &'static AtomicBool,
    /// Longest time a note waited between the core and the window.
    max_delay: Duration,
    /// Longest loop turn (applying a batch and redrawing).
    max_turn: Duration,
}

impl ServerApp {
    /// Builds the window and, when `setup` holds a configuration, binds the core and starts it
    /// on its own thread. A setup or bind problem is kept and shown in the window.
    pub fn new(setup: Result<CoreConfig>, opts: GuiOptions) -> Result<ServerApp> {
        let app = app::App::default().with_scheme(app::Scheme::Gtk);
        let (tx, rx) = app::channel::<Message>();
        let ui = layout::build(tx, &opts.title, &opts.setup_info);
        let mut model = Model::default();
        model.policy = opts.policy.clone();
        let mut fatal = None;
        let mut core = None;
        let mut core_thread = None;
        match setup {
            Err(e) => {
                model.set_fatal(&e);
                fatal = Some(e);
            }
            Ok(cfg) => {
                // The sink runs on the core's thread: it only queues the note and wakes the loop.
                let sink = Box::new(move |note: Note| tx.send(Message::Core(note, Instant::now())));
                match ServerCore::bind(cfg, sink) {
                    Ok((c, handle)) => {
                        let t = std::thread::Builder::new()
                            .name("proctor-core".into())
                            .spawn(move || {
                                if let Err(e) = c.run() {
                                    tx.send(Message::CoreFailed(e.to_string()));
                                }
                            })
                            .map_err(|e| Error::io("cannot start the core thread", e))?;
                        core = Some(handle);
                        core_thread = Some(t);
                    }
                    Err(e) => {
                        model.set_fatal(&e);
                        fatal = Some(e);
                    }
                }
            }
        }
        Ok(ServerApp {
            app,
            tx,
            rx,
            core,
            core_thread,
            fatal,
            opts,
            model,
            ui,
            order: SortOrder::Triage,
            row_ids: Vec::new(),
            selected: None,
            filter: LineFilter::default(),
            dirty: super::model::Changes {
                table: true,
                lines: true,
                status: true,
            },
            rebuild_lines: true,
            banner_shown: false,
            last_refresh: Instant::now(),
            refresh_pending: false,
            closing_since: None,
            copied_until: None,
            quit: false,
            signals: crate::sys::stop_on_signals(),
            max_delay: Duration::ZERO,
            max_turn: Duration::ZERO,
        })
    }

    /// Shows the window and runs until it is closed and the core has stopped. Writes the
    /// `--dump-state` file on the way out; returns the setup problem, if there was one.
    pub fn run(mut self) -> Result<()> {
        self.ui.win.show();
        self.schedule_timers();
        if self.opts.start {
            self.start_stop();
        }
        self.refresh();
        while !self.quit {
            if !self.app.wait() {
                break;
            }
            let turn = Instant::now();
            self.drain();
            if self.quit {
                break;
            }
            self.maybe_refresh();
            self.max_turn = self.max_turn.max(turn.elapsed());
        }
        self.refresh();
        self.write_dump();
        if let Some(t) = self.core_thread.take()
            && self.model.exited
        {
            let _ = t.join();
        }
        self.ui.win.hide();
        match self.fatal.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn schedule_timers(&self) {
        let tx = self.tx;
        app::add_timeout3(TICK_SECS, move |h| {
            tx.send(Message::Tick);
            app::repeat_timeout3(TICK_SECS, h);
        });
        if let Some(d) = self.opts.quit_after {
            app::add_timeout3(d.as_secs_f64(), move |_| tx.send(Message::QuitAfter));
        }
        if let Some(d) = self.opts.stop_after {
            app::add_timeout3(d.as_secs_f64(), move |_| tx.send(Message::StopAfter));
        }
    }

    /// Applies queued messages until the queue is empty or the time budget is spent.
    fn drain(&mut self) {
        let start = Instant::now();
        let mut n = 0u32;
        while let Some(msg) = self.rx.recv() {
            self.handle(msg);
            n += 1;
            if self.quit {
                return;
            }
            if n.is_multiple_of(256) && start.elapsed() > DRAIN_BUDGET {
                // Let the window redraw; come straight back for the rest.
                app::awake();
                return;
            }
        }
    }

    fn handle(&mut self, msg: Message) {
        match msg {
            Message::Core(note, sent) => {
                self.max_delay = self.max_delay.max(sent.elapsed());
                let ch = self.model.apply(note, now_ms());
                self.dirty.merge(ch);
                if self.model.exited {
                    self.core = None;
                    if self.closing_since.is_some() {
                        self.quit = true;
                    }
                }
            }
            Message::CoreFailed(e) => {
                self.model.exited = true;
                self.model.phase = Phase::Idle;
                self.model.problem = Some(super::model::Problem {
                    text: format!(
                        "The server stopped working: {e}. The log files written so far are complete up to here."
                    ),
                    fatal: true,
                });
                self.core = None;
                self.dirty.status = true;
                if self.closing_since.is_some() {
                    self.quit = true;
                }
            }
            Message::StartStop => self.start_stop(),
            Message::SortBy(col) => {
                self.order = self.order.clicked(col);
                self.dirty.table = true;
            }
            Message::SelectRow(row) => {
                let id = usize::try_from(row)
                    .ok()
                    .and_then(|i| self.row_ids.get(i))
                    .cloned();
                let id = if id == self.selected { None } else { id };
                self.select(id);
            }
            Message::ShowAll => self.select(None),
            Message::FilterChanged => {
                self.filter = LineFilter::new(self.selected.clone(), &self.ui.filter.value());
                self.rebuild_lines = true;
                self.dirty.lines = true;
                self.dirty.status = true;
            }
            Message::CopyLogPath => {
                let path = self.ui.log_dir.value();
                if !path.is_empty() {
                    app::copy(&path);
                    self.ui.copy.set_label("Copied ✓");
                    self.copied_until = Some(Instant::now() + Duration::from_secs(2));
                }
            }
            Message::ReloadPolicy => {
                if let Some(core) = &self.core {
                    core.send(Command::ReloadPolicy);
                }
            }
            Message::CloseRequested => self.request_close(true),
            Message::QuitAfter => self.request_close(false),
            Message::StopAfter => {
                if self.model.phase == Phase::Running {
                    self.start_stop();
                }
            }
            Message::Tick => self.tick(),
            Message::Refresh => self.refresh_pending = false,
        }
    }

    fn tick(&mut self) {
        if self.signals.load(Ordering::SeqCst) {
            self.signals.store(false, Ordering::SeqCst);
            self.request_close(false);
        }
        if self.copied_until.is_some_and(|t| Instant::now() >= t) {
            self.copied_until = None;
            self.ui.copy.set_label("Copy path");
        }
        if let Some(t) = self.closing_since
            && t.elapsed() > CLOSE_DEADLINE
        {
            log::warn!("the core did not stop in time; closing the window anyway");
            self.quit = true;
        }
        self.dirty.status = true;
        self.dirty.table = true;
    }

    fn select(&mut self, id: Option<ClientId>) {
        self.selected = id;
        self.filter = LineFilter::new(self.selected.clone(), &self.ui.filter.value());
        self.rebuild_lines = true;
        self.dirty.lines = true;
        self.dirty.table = true;
        self.dirty.status = true;
    }

    fn start_stop(&mut self) {
        if self.closing_since.is_some() {
            return;
        }
        let Some(core) = &self.core else {
            return;
        };
        if let Some(cmd) = self.model.press_start_stop() {
            core.send(cmd);
            self.dirty.status = true;
        }
    }

    /// Closing: asks first when a session runs (unless `ask` is false), then stops the
    /// session through the core and quits once the core says it has exited.
    fn request_close(&mut self, ask: bool) {
        if self.closing_since.is_some() {
            return;
        }
        let Some(core) = self.core.clone() else {
            self.quit = true;
            return;
        };
        if ask && matches!(self.model.phase, Phase::Running | Phase::Starting) {
            let answer = dialog::choice2_default(
                "A monitoring session is running.\n\nStop it and close the window? The lab PCs are told to stop and the log files are closed.",
                "Keep running",
                "Stop session and close",
                "",
            );
            if answer != Some(1) {
                return;
            }
        }
        core.send(Command::Shutdown);
        self.closing_since = Some(Instant::now());
        self.dirty.status = true;
    }

    fn maybe_refresh(&mut self) {
        if !self.dirty.any() && !self.rebuild_lines {
            return;
        }
        let since = self.last_refresh.elapsed();
        if since >= REFRESH_EVERY || self.rebuild_lines {
            self.refresh();
        } else if !self.refresh_pending {
            self.refresh_pending = true;
            let tx = self.tx;
            let left = (REFRESH_EVERY - since).as_secs_f64();
            app::add_timeout3(left, move |_| tx.send(Message::Refresh));
        }
    }

    /// Brings the widgets up to date with the model (only the parts that changed).
    fn refresh(&mut self) {
        let now = now_ms();
        let dirty = std::mem::take(&mut self.dirty);
        if dirty.table {
            self.refresh_table(now);
        }
        if dirty.lines || self.rebuild_lines {
            if std::mem::take(&mut self.rebuild_lines) {
                self.ui.events.rebuild(&self.model, &self.filter);
            } else {
                self.ui.events.append_new(&self.model, &self.filter);
            }
        }
        if dirty.status {
            self.refresh_status(now);
        }
        self.last_refresh = Instant::now();
    }

    fn refresh_table(&mut self, now: u64) {
        let rows = self.model.rows(self.order, now);
        if self
            .selected
            .as_ref()
            .is_some_and(|s| !self.model.machines.contains_key(s))
        {
            // A new session emptied the table.
            self.selected = None;
            self.filter = LineFilter::new(None, &self.ui.filter.value());
            self.rebuild_lines = true;
        }
        self.row_ids = rows.iter().map(|r| r.id.clone()).collect();
        let views: Vec<RowView> = rows
            .iter()
            .map(|r| RowView {
                cells: Column::ALL.iter().map(|c| r.cell(*c, now)).collect(),
                flag: r.flag(),
                state: r.state,
                selected: self.selected.as_ref() == Some(&r.id),
            })
            .collect();
        let titles = Column::ALL.iter().map(|c| self.order.title(*c)).collect();
        self.ui.table.set_rows(views, titles);
        let n = self.model.machines.len();
        self.ui.machines_title.set_label(&format!("Machines ({n})"));
    }

    fn button_label(&self) -> &'static str {
        if self.closing_since.is_some() {
            "Closing…"
        } else {
            self.model.phase.button_label()
        }
    }

    fn button_active(&self) -> bool {
        self.closing_since.is_none()
            && self.core.is_some()
            && self.model.phase.button_active()
            && !self.model.problem.as_ref().is_some_and(|p| p.fatal)
    }

    fn headline(&self, now: u64) -> String {
        if self.closing_since.is_some() {
            "Closing: stopping the session and closing the log files…".into()
        } else {
            self.model.headline(now)
        }
    }

    fn refresh_status(&mut self, now: u64) {
        let label = self.button_label();
        let headline = self.headline(now);
        let (bg, active) = match (self.model.phase, self.button_active()) {
            (_, false) => (Color::from_rgb(150, 150, 150), false),
            (Phase::Running, true) => (Color::from_rgb(198, 40, 40), true),
            _ => (Color::from_rgb(46, 125, 50), true),
        };
        let ui = &mut self.ui;
        ui.button.set_label(label);
        ui.button.set_color(bg);
        if active {
            ui.button.activate();
        } else {
            ui.button.deactivate();
        }
        ui.button.redraw();
        ui.headline.set_label(&label_safe(&headline));
        ui.headline.redraw();

        let problem = self.model.problem.as_ref().map(|p| p.text.clone());
        match &problem {
            Some(t) => {
                ui.banner_text.set_label(&label_safe(&format!("⚠  {t}")));
                if !self.banner_shown {
                    ui.banner.show();
                    self.banner_shown = true;
                    ui.outer.layout();
                }
                ui.banner.redraw();
            }
            None if self.banner_shown => {
                ui.banner.hide();
                self.banner_shown = false;
                ui.outer.layout();
            }
            None => {}
        }

        let title = match &self.selected {
            Some(id) => format!("Events: {} {} only", id.host, id.addr),
            None => "Events: all machines".to_string(),
        };
        ui.events_title.set_label(&label_safe(&title));
        if self.selected.is_some() {
            ui.show_all.activate();
        } else {
            ui.show_all.deactivate();
        }

        ui.session_status.set_label(&self.model.session_status());
        let dir = self
            .model
            .session
            .as_ref()
            .map(|s| {
                // Absolute, so the copied path works from any terminal.
                std::path::absolute(&s.dir)
                    .unwrap_or_else(|_| s.dir.clone())
                    .display()
                    .to_string()
            })
            .unwrap_or_default();
        if ui.log_dir.value() != dir {
            ui.log_dir.set_value(&dir);
            // Show the end of a long path: the session directory is the telling part.
            let _ = ui.log_dir.set_position(dir.len() as i32);
        }
        let (connected, lost, stopped) = self.model.counts();
        let mut counts = format!("{connected} connected · {lost} lost");
        if stopped > 0 {
            counts.push_str(&format!(" · {stopped} done"));
        }
        let flagged: u64 = self.model.machines.values().map(|m| m.flagged).sum();
        if self.model.policy.is_some() {
            counts.push_str(&format!(" · {flagged} flagged"));
        }
        ui.counts.set_label(&counts);
        ui.counts.set_label_color(if lost > 0 {
            Color::from_rgb(190, 0, 0)
        } else if flagged > 0 {
            super::events_view::FLAGGED_COLOR
        } else {
            Color::from_rgb(20, 20, 20)
        });
        if let (Some(file), Some(p)) = (&self.opts.policy_file, &self.model.policy) {
            let text = format!("{}\npolicy {file}: {p}", self.opts.setup_info);
            if ui.setup.label() != label_safe(&text) {
                ui.setup.set_label(&label_safe(&text));
            }
        }
        match (&self.model.policy, self.core.is_some()) {
            (Some(p), true) => {
                ui.reload.activate();
                let tip = match &self.model.policy_error {
                    Some(e) => format!("Policy in force: {p}\nLast reload failed: {e}"),
                    None => format!("Policy in force: {p}\nClick to read the file again"),
                };
                ui.reload.set_tooltip(&tip);
            }
            _ => ui.reload.deactivate(),
        }
        let mut rate = format!("{} events/s", self.model.events_per_second(now));
        if self.model.refused > 0 {
            rate.push_str(&format!(" · {} refused", self.model.refused));
        }
        ui.rate.set_label(&rate);
        ui.win.redraw();
    }

    fn write_dump(&self) {
        let Some(path) = &self.opts.dump_state else {
            return;
        };
        let view = ViewState {
            button: self.button_label().to_string(),
            button_active: self.button_active(),
            headline: self.headline(now_ms()),
            message: self.model.problem.as_ref().map(|p| p.text.clone()),
            order: self.order,
            selected: self
                .selected
                .as_ref()
                .map(|id| format!("{} {}", id.host, id.addr)),
            filter: self.ui.filter.value(),
            lines_shown: self.ui.events.shown(),
            following: self.ui.events.at_bottom(),
            log_dir: self.ui.log_dir.value(),
            max_note_delay_ms: self.max_delay.as_millis() as u64,
            max_turn_ms: self.max_turn.as_millis() as u64,
        };
        let json = state_json(&self.model, &view, now_ms());
        if let Err(e) = std::fs::write(path, json) {
            log::error!("cannot write {}: {e}", path.display());
        }
    }
}

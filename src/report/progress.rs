//! Feedback on long work (issue 7): while a big session is read and written, a live
//! `files/bytes` line on stderr when stderr is a terminal; otherwise (a pipe, a log file, CI) a
//! single closing note, so logs are not filled with redraws. `-q` silences both.

use std::io::{self, BufRead, IsTerminal, Read, Write};
use std::time::{Duration, Instant};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Redraw one line in place (`\r`), then the closing note.
    Live,
    /// Only the closing note.
    Note,
    /// Nothing.
    Quiet,
}

/// Progress of the report's two passes over the files.
pub struct Progress {
    mode: Mode,
    out: Box<dyn Write>,
    every: Duration,
    phase: &'static str,
    files_total: usize,
    files: usize,
    bytes_total: u64,
    bytes: u64,
    last_draw: Option<Instant>,
    started: Instant,
    drawn: bool,
}

impl Progress {
    /// Progress on stderr: live if stderr is a terminal, a closing note otherwise, nothing
    /// when `quiet`.
    pub fn for_stderr(quiet: bool) -> Self {
        let mode = if quiet {
            Mode::Quiet
        } else if io::stderr().is_terminal() {
            Mode::Live
        } else {
            Mode::Note
        };
        Self::new(mode, Box::new(io::stderr()), Duration::from_millis(100))
    }

    /// Progress written to `out`, redrawn at most every `every` in [`Mode::Live`].
    pub fn new(mode: Mode, out: Box<dyn Write>, every: Duration) -> Self {
        Progress {
            mode,
            out,
            every,
            phase: "",
            files_total: 0,
            files: 0,
            bytes_total: 0,
            bytes: 0,
            last_draw: None,
            started: Instant::now(),
            drawn: false,
        }
    }

    /// Starts a pass over `files` files holding `bytes` bytes.
    pub fn phase(&mut self, name: &'static str, files: usize, bytes: u64) {
        self.phase = name;
        self.files_total = files;
        self.files = 0;
        self.bytes_total = bytes;
        self.bytes = 0;
        self.draw(true);
    }

    /// `n` more bytes done.
    pub fn advance(&mut self, n: u64) {
        self.bytes += n;
        self.draw(false);
    }

    /// One more file done.
    pub fn file_done(&mut self) {
        self.files += 1;
        self.draw(true);
    }

    fn draw(&mut self, force: bool) {
        if self.mode != Mode::Live {
            return;
        }
        let now = Instant::now();
        if !force
            && self
                .last_draw
                .is_some_and(|t| now.duration_since(t) < self.every)
        {
            return;
        }
        self.last_draw = Some(now);
        let pct = (self.bytes.min(self.bytes_total) * 100)
            .checked_div(self.bytes_total)
            .unwrap_or(100);
        let _ = write!(
            self.out,
            "\r\x1b[Kreport: {} {}/{} files, {} of {} ({pct}%)",
            self.phase,
            self.files,
            self.files_total,
            super::html::size(self.bytes),
            super::html::size(self.bytes_total)
        );
        let _ = self.out.flush();
        self.drawn = true;
    }

    /// Ends with a one-line note (replacing the live line), unless quiet.
    pub fn finish(&mut self, note: &str) {
        if self.mode == Mode::Quiet {
            return;
        }
        let clear = if self.drawn { "\r\x1b[K" } else { "" };
        let secs = self.started.elapsed().as_secs_f64();
        let _ = writeln!(self.out, "{clear}report: {note} in {secs:.1} s");
        let _ = self.out.flush();
    }
}

/// A reader that reports the bytes consumed through it to a [`Progress`].
pub struct Counted<'a, R> {
    inner: R,
    progress: &'a mut Progress,
}

impl<'a, R: BufRead> Counted<'a, R> {
    /// Wraps `inner`.
    pub fn new(inner: R, progress: &'a mut Progress) -> Self {
        Counted { inner, progress }
    }
}

impl<R: BufRead> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.advance(n as u64);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Counted<'_, R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        self.inner.consume(amt);
        self.progress.advance(amt as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    impl Shared {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn run(mode: Mode) -> String {
        let out = Shared::default();
        let mut p = Progress::new(mode, Box::new(out.clone()), Duration::ZERO);
        p.phase("reading", 2, 2_000_000);
        let data = vec![b'x'; 1_000_000];
        let mut r = Counted::new(&data[..], &mut p);
        let mut sink = Vec::new();
        r.read_to_end(&mut sink).unwrap();
        p.file_done();
        p.advance(1_000_000);
        p.file_done();
        p.finish("read 2 log files");
        out.text()
    }

    #[test]
    fn live_mode_redraws_one_line_with_files_and_bytes_then_notes() {
        let text = run(Mode::Live);
        assert!(text.contains("\r\x1b[Kreport: reading 0/2 files, 0 B of 2.0 MB (0%)"));
        assert!(
            text.contains("reading 1/2 files, 1.0 MB of 2.0 MB (50%)"),
            "{text:?}"
        );
        assert!(text.contains("reading 2/2 files, 2.0 MB of 2.0 MB (100%)"));
        assert!(text.ends_with(" s\n"));
        assert_eq!(text.matches('\n').count(), 1, "one line in the end");
    }

    #[test]
    fn note_mode_prints_only_the_closing_line_and_quiet_nothing() {
        let text = run(Mode::Note);
        assert!(text.starts_with("report: read 2 log files in "), "{text:?}");
        assert_eq!(text.matches('\n').count(), 1);
        assert!(!text.contains('\r'));
        assert_eq!(run(Mode::Quiet), "");
    }
}

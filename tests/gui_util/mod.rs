//! Helpers for the window tests (tests/gui.rs): a private virtual X server per test, the real
//! binary started on that display, `xdotool` to find and click the window, and a small JSON
//! reader for the `--dump-state` file. Every wait has a deadline; every child is killed on drop.
//! The process, key, argument and log helpers come from tests/common and are re-exported here.
#![allow(dead_code)]

pub use crate::common::*;
use std::collections::BTreeMap;
use std::ffi::{CString, c_char, c_int, c_long, c_ulong, c_void};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A fresh directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    temp_dir_named("gui", name)
}

/// A (server TCP, client UDP) port pair unique to this test process and slot, below the
/// kernel's ephemeral range (a smaller block per process than tests/common's `ports`).
pub fn ports(slot: u16) -> (u16, u16) {
    let base = 20000 + (std::process::id() % 600) as u16 * 20 + slot * 2;
    (base, base + 1)
}

/// Polls `cond` every 50 ms (conditions here often run `xdotool`) until it holds or `timeout`
/// passes.
pub fn wait_until(timeout: Duration, cond: impl FnMut() -> bool) -> bool {
    wait_until_every(Duration::from_millis(50), timeout, cond)
}

/// A private Xvfb server (it picks a free display itself and tells us which); killed on drop.
/// Each test gets its own, so windows of tests running in parallel never overlap or steal a
/// click.
pub struct XServer {
    child: Child,
    /// `:N`
    pub display: String,
}

impl XServer {
    /// Starts Xvfb with a 1280x800 screen and waits until it accepts connections.
    pub fn start() -> XServer {
        let mut child = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1280x800x24",
                "-nolisten",
                "tcp",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start Xvfb: run scripts/install-deps.sh (package xvfb)");
        let out = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(out).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(15)).unwrap_or_default();
        let n = line.trim();
        if n.is_empty() || !n.chars().all(|c| c.is_ascii_digit()) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("Xvfb did not report its display number (got {line:?})");
        }
        XServer {
            child,
            display: format!(":{n}"),
        }
    }

    /// Runs `xdotool` with `args` on this display; its stdout on success.
    pub fn xdotool(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("xdotool")
            .args(args)
            .env("DISPLAY", &self.display)
            .stdin(Stdio::null())
            .output()
            .expect("cannot run xdotool: run scripts/install-deps.sh (package xdotool)");
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Waits for a mapped window whose name contains `name`; its id.
    pub fn find_window(&self, name: &str, timeout: Duration) -> Option<String> {
        let mut id = None;
        wait_until(timeout, || {
            id = self
                .xdotool(&["search", "--onlyvisible", "--name", name])
                .and_then(|s| s.lines().next().map(str::to_string));
            id.is_some()
        });
        id
    }

    /// Number of mapped windows on the display (a dialog adds one).
    pub fn visible_windows(&self) -> usize {
        self.xdotool(&["search", "--onlyvisible", "--name", ""])
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }

    /// Clicks at (x, y) relative to window `wid`.
    pub fn click(&self, wid: &str, (x, y): (i32, i32)) {
        let (x, y) = (x.to_string(), y.to_string());
        let r = self.xdotool(&["mousemove", "--window", wid, &x, &y, "click", "1"]);
        assert!(r.is_some(), "xdotool click failed");
    }

    /// Asks window `wid` to close, as a window manager's close button does (a
    /// `WM_DELETE_WINDOW` client message). There is no window manager on this display.
    pub fn send_close(&self, wid: &str) -> bool {
        let Ok(w) = wid.trim().parse::<c_ulong>() else {
            return false;
        };
        let Ok(name) = CString::new(self.display.clone()) else {
            return false;
        };
        // libX11 is loaded at run time (the window links it anyway), so the tests need no
        // X11 crate.
        // SAFETY: dlopen/dlsym with NUL-terminated names; each symbol is cast to its C
        // signature from Xlib.h; the event is a zeroed XClientMessageEvent padded to the size
        // of XEvent; the display is closed before returning.
        unsafe {
            let lib = libc::dlopen(c"libX11.so.6".as_ptr(), libc::RTLD_NOW);
            if lib.is_null() {
                return false;
            }
            let sym = |n: &std::ffi::CStr| libc::dlsym(lib, n.as_ptr());
            let (open, atom, send, flush, close) = (
                sym(c"XOpenDisplay"),
                sym(c"XInternAtom"),
                sym(c"XSendEvent"),
                sym(c"XFlush"),
                sym(c"XCloseDisplay"),
            );
            if [open, atom, send, flush, close].iter().any(|p| p.is_null()) {
                return false;
            }
            let open: unsafe extern "C" fn(*const c_char) -> *mut c_void =
                std::mem::transmute(open);
            let atom: unsafe extern "C" fn(*mut c_void, *const c_char, c_int) -> c_ulong =
                std::mem::transmute(atom);
            let send: unsafe extern "C" fn(
                *mut c_void,
                c_ulong,
                c_int,
                c_long,
                *mut XEvent,
            ) -> c_int = std::mem::transmute(send);
            let flush: unsafe extern "C" fn(*mut c_void) -> c_int = std::mem::transmute(flush);
            let close: unsafe extern "C" fn(*mut c_void) -> c_int = std::mem::transmute(close);
            let d = open(name.as_ptr());
            if d.is_null() {
                return false;
            }
            let mut ev = XEvent { pad: [0; 24] };
            ev.xclient = ClientMessage {
                kind: 33, // ClientMessage
                serial: 0,
                send_event: 0,
                display: d,
                window: w,
                message_type: atom(d, c"WM_PROTOCOLS".as_ptr(), 0),
                format: 32,
                l: [
                    atom(d, c"WM_DELETE_WINDOW".as_ptr(), 0) as c_long,
                    0,
                    0,
                    0,
                    0,
                ],
            };
            let ok = send(d, w, 0, 0, &mut ev) != 0;
            flush(d);
            close(d);
            ok
        }
    }

    /// Saves a screenshot of the whole screen (ImageMagick `import -window root`).
    pub fn screenshot(&self, path: &Path) -> bool {
        Command::new("import")
            .args(["-display", &self.display, "-window", "root"])
            .arg(path)
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for XServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Xlib's `XClientMessageEvent` (format 32).
#[repr(C)]
#[derive(Clone, Copy)]
struct ClientMessage {
    kind: c_int,
    serial: c_ulong,
    send_event: c_int,
    display: *mut c_void,
    window: c_ulong,
    message_type: c_ulong,
    format: c_int,
    l: [c_long; 5],
}

/// Xlib's `XEvent`: a union padded to 24 longs.
#[repr(C)]
union XEvent {
    xclient: ClientMessage,
    pad: [c_long; 24],
}

impl Proc {
    /// Starts the binary with `args` (and `DISPLAY` when given), output to `out`.
    pub fn start_on(args: &[String], out: PathBuf, display: Option<&str>) -> Proc {
        Self::start_with(bin(), &[], args, out, display)
    }

    /// Starts `program pre.. bin args..` (e.g. `unshare -n proctor ...`).
    pub fn start_with(
        program: &str,
        pre: &[&str],
        args: &[String],
        out: PathBuf,
        display: Option<&str>,
    ) -> Proc {
        let mut cmd = Command::new(program);
        cmd.args(pre);
        if program != bin() {
            cmd.arg(bin());
        }
        cmd.args(args);
        match display {
            Some(d) => cmd.env("DISPLAY", d),
            None => cmd.env_remove("DISPLAY"),
        };
        Proc::spawn(cmd, out)
    }
}

/// The window server on loopback for a test (tests/common's arguments without `--headless`),
/// dumping its state to `<dir>/state.json`.
pub fn gui_server_args(
    dir: &Path,
    key: &Path,
    sport: u16,
    cport: u16,
    extra: &[&str],
) -> Vec<String> {
    let mut a = server_args(dir, key, sport, cport);
    a.push("--dump-state".into());
    a.push(dir.join("state.json").display().to_string());
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

/// Sends `count` one-byte UDP datagrams to 127.0.0.1:`port`, paced at `per_sec`.
pub fn udp_flood(port: u16, count: u32, per_sec: u32) {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    let start = Instant::now();
    for i in 0..count {
        let _ = sock.send_to(b"x", ("127.0.0.1", port));
        if i.is_multiple_of(50) {
            let due = start + Duration::from_secs_f64(f64::from(i) / f64::from(per_sec));
            if let Some(d) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(d);
            }
        }
    }
}

/// A JSON value (just enough to read `--dump-state`).
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// A number.
    Num(f64),
    /// A string.
    Str(String),
    /// An array.
    Arr(Vec<Json>),
    /// An object.
    Obj(BTreeMap<String, Json>),
}

impl Json {
    /// Parses a whole document.
    pub fn parse(s: &str) -> Result<Json, String> {
        let mut p = Parser {
            b: s.as_bytes(),
            i: 0,
        };
        let v = p.value()?;
        p.ws();
        if p.i != p.b.len() {
            return Err(format!("trailing text at {}", p.i));
        }
        Ok(v)
    }

    /// Member `k` of an object (Null if absent).
    pub fn get(&self, k: &str) -> &Json {
        match self {
            Json::Obj(m) => m.get(k).unwrap_or(&Json::Null),
            _ => &Json::Null,
        }
    }

    /// The string, if it is one.
    pub fn str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The number, if it is one.
    pub fn num(&self) -> Option<f64> {
        match self {
            Json::Num(n) => Some(*n),
            _ => None,
        }
    }

    /// The bool, if it is one.
    pub fn bool(&self) -> Option<bool> {
        match self {
            Json::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The elements, if it is an array.
    pub fn arr(&self) -> &[Json] {
        match self {
            Json::Arr(v) => v,
            _ => &[],
        }
    }
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.b.len() && self.b[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Result<(), String> {
        self.ws();
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!("expected '{}' at {}", c as char, self.i))
        }
    }

    fn lit(&mut self, word: &str, v: Json) -> Result<Json, String> {
        if self.b[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Ok(v)
        } else {
            Err(format!("bad literal at {}", self.i))
        }
    }

    fn value(&mut self) -> Result<Json, String> {
        self.ws();
        match self.b.get(self.i) {
            Some(b'{') => {
                self.i += 1;
                let mut m = BTreeMap::new();
                self.ws();
                if self.b.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(Json::Obj(m));
                }
                loop {
                    self.ws();
                    let k = self.string()?;
                    self.eat(b':')?;
                    let v = self.value()?;
                    m.insert(k, v);
                    self.ws();
                    match self.b.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(Json::Obj(m));
                        }
                        _ => return Err(format!("bad object at {}", self.i)),
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                let mut v = Vec::new();
                self.ws();
                if self.b.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(Json::Arr(v));
                }
                loop {
                    v.push(self.value()?);
                    self.ws();
                    match self.b.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Json::Arr(v));
                        }
                        _ => return Err(format!("bad array at {}", self.i)),
                    }
                }
            }
            Some(b'"') => Ok(Json::Str(self.string()?)),
            Some(b't') => self.lit("true", Json::Bool(true)),
            Some(b'f') => self.lit("false", Json::Bool(false)),
            Some(b'n') => self.lit("null", Json::Null),
            Some(_) => {
                let start = self.i;
                while self.i < self.b.len() && b"+-.eE0123456789".contains(&self.b[self.i]) {
                    self.i += 1;
                }
                std::str::from_utf8(&self.b[start..self.i])
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .map(Json::Num)
                    .ok_or_else(|| format!("bad number at {start}"))
            }
            None => Err("unexpected end".into()),
        }
    }

    fn string(&mut self) -> Result<String, String> {
        if self.b.get(self.i) != Some(&b'"') {
            return Err(format!("expected string at {}", self.i));
        }
        self.i += 1;
        let mut out = Vec::new();
        loop {
            match self.b.get(self.i) {
                None => return Err("unterminated string".into()),
                Some(b'"') => {
                    self.i += 1;
                    return String::from_utf8(out).map_err(|e| e.to_string());
                }
                Some(b'\\') => {
                    let c = *self.b.get(self.i + 1).ok_or("bad escape")?;
                    self.i += 2;
                    match c {
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let hex = self
                                .b
                                .get(self.i..self.i + 4)
                                .and_then(|h| std::str::from_utf8(h).ok())
                                .and_then(|h| u32::from_str_radix(h, 16).ok())
                                .ok_or("bad \\u escape")?;
                            self.i += 4;
                            let ch = char::from_u32(hex).unwrap_or('\u{fffd}');
                            out.extend_from_slice(ch.to_string().as_bytes());
                        }
                        other => out.push(other),
                    }
                }
                Some(&c) => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
    }
}

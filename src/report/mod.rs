//! `proctor report SESSION_DIR`: reads a session's log directory after the fact, from the files
//! alone, and writes one self-contained HTML report plus a plain-text summary on stdout.
//!
//! - [`parse`]: one log line to one record (pure).
//! - [`model`]: the per-machine summary built from those records, and the session around it.
//! - [`html`]: the page; [`text`]: the stdout summary.
//! - [`progress`]: files/bytes done, on stderr.
//!
//! This file only finds the files, feeds them through, and writes the output. Files are read
//! twice (once to build the summary, once to embed them), so a big session is streamed rather
//! than held in memory.

pub mod html;
pub mod model;
pub mod parse;
pub mod progress;
pub mod text;

use crate::cli::ReportArgs;
use crate::error::{Error, Result};
use model::{MachineBuilder, Session};
use progress::Progress;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// A file that was not read: its name and why.
pub type SkippedFile = (String, String);

/// First line of every log file the server writes.
const MAGIC: &[u8] = b"# proctor log";

/// Runs the subcommand; `quiet` (the global `-q`) silences the progress on stderr.
pub fn run(args: &ReportArgs, quiet: bool) -> Result<()> {
    let dir = &args.session_dir;
    let (logs, skipped_files) = find_logs(dir)?;
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| dir.join("report.html"));
    let mut progress = Progress::for_stderr(quiet);
    let sizes: Vec<u64> = logs
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .collect();
    let total: u64 = sizes.iter().sum();

    progress.phase("reading", logs.len(), total);
    let mut machines = Vec::new();
    let mut skipped_files = skipped_files;
    let mut read_paths = Vec::new();
    for path in &logs {
        let name = file_name(path);
        match read_machine(path, &name, &mut progress) {
            Ok(m) => {
                machines.push(m);
                read_paths.push(path.clone());
            }
            Err(e) => skipped_files.push((name, format!("cannot read it: {e}"))),
        }
        progress.file_done();
    }
    if machines.is_empty() {
        return Err(Error::Runtime(format!(
            "no log file in {} could be read",
            dir.display()
        )));
    }
    let dir_name = file_name(&dir.canonicalize().unwrap_or_else(|_| dir.clone()));
    let session = Session::new(&dir_name, machines, skipped_files);

    progress.phase("writing", session.machines.len(), total);
    let written = write_html(&session, &read_paths, &output, &mut progress)?;

    // A closed stdout (`| head`) must not turn a written report into a failure.
    let _ = std::io::stdout()
        .write_all(text::summary(&session, &output.display().to_string()).as_bytes());
    let lines: u64 = session.machines.iter().map(|m| m.lines).sum();
    progress.finish(&format!(
        "read {} log file{} ({}, {} lines, {} skipped) and wrote {} ({})",
        session.machines.len(),
        if session.machines.len() == 1 { "" } else { "s" },
        html::size(total),
        lines,
        session.skipped_total(),
        output.display(),
        html::size(written)
    ));
    Ok(())
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

/// Whether the file starts with the server's `# proctor log` line.
fn is_proctor_log(path: &Path) -> std::io::Result<bool> {
    let mut head = [0u8; MAGIC.len() + 1];
    let mut f = File::open(path)?;
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n == head.len() && head.starts_with(MAGIC) && matches!(head[MAGIC.len()], b'\n' | b'\r'))
}

/// The session's log files (sorted by name), and the `.log` files that are not proctor logs
/// with the reason. A directory without any proctor log is a usage error that says what to
/// pass instead.
pub fn find_logs(dir: &Path) -> Result<(Vec<PathBuf>, Vec<SkippedFile>)> {
    let usage = |m: String| Err(Error::Usage(m));
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return usage(format!(
                "session directory {} does not exist (pass one of the directories the server \
                 creates under its --logs directory, e.g. server_logs/2026-11-26T14-09-42Z)",
                dir.display()
            ));
        }
        Err(e) => return Err(Error::io(format!("cannot read {}", dir.display()), e)),
    };
    if !meta.is_dir() {
        return usage(format!(
            "{} is not a directory: pass a session directory (one of those the server creates \
             under its --logs directory), not a single file",
            dir.display()
        ));
    }
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Error::io(format!("cannot list {}", dir.display()), e))?;
    let mut logs = Vec::new();
    let mut skipped = Vec::new();
    let mut subdirs = Vec::new();
    for e in entries.flatten() {
        let path = e.path();
        let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if is_dir {
            subdirs.push(path);
            continue;
        }
        if path.extension().and_then(|x| x.to_str()) != Some("log") {
            continue;
        }
        match is_proctor_log(&path) {
            Ok(true) => logs.push(path),
            Ok(false) => skipped.push((
                file_name(&path),
                "not a proctor log (it does not start with '# proctor log')".to_string(),
            )),
            Err(e) => skipped.push((file_name(&path), format!("cannot read it: {e}"))),
        }
    }
    logs.sort();
    skipped.sort();
    if logs.is_empty() {
        subdirs.sort();
        let sessions: Vec<&PathBuf> = subdirs
            .iter()
            .filter(|d| {
                std::fs::read_dir(d).is_ok_and(|rd| {
                    rd.flatten()
                        .any(|e| is_proctor_log(&e.path()).unwrap_or(false))
                })
            })
            .collect();
        if let Some(latest) = sessions.last() {
            return usage(format!(
                "{} holds {} session director{}, not log files: pass one of them, e.g. {} (the latest)",
                dir.display(),
                sessions.len(),
                if sessions.len() == 1 { "y" } else { "ies" },
                latest.display()
            ));
        }
        return usage(format!(
            "{} is not a proctor session directory: it has no <host>_<address>.log file starting \
             with '# proctor log'",
            dir.display()
        ));
    }
    Ok((logs, skipped))
}

/// Builds one machine's summary from its file, a line at a time.
fn read_machine(
    path: &Path,
    name: &str,
    progress: &mut Progress,
) -> std::io::Result<model::Machine> {
    let mut reader = BufReader::with_capacity(256 * 1024, File::open(path)?);
    let mut b = MachineBuilder::new(name);
    let mut buf = Vec::new();
    let mut n = 0u64;
    loop {
        buf.clear();
        let len = reader.read_until(b'\n', &mut buf)?;
        if len == 0 {
            break;
        }
        n += 1;
        let complete = buf.last() == Some(&b'\n');
        let text = String::from_utf8_lossy(&buf);
        b.feed(n, text.trim_end_matches('\n'), len as u64, complete);
        progress.advance(len as u64);
    }
    Ok(b.finish())
}

/// Writes the page to a temporary file next to `output` and renames it into place, so a
/// failed run never leaves half a report. Returns the page's size.
fn write_html(
    s: &Session,
    paths: &[PathBuf],
    output: &Path,
    progress: &mut Progress,
) -> Result<u64> {
    let hint = |e: std::io::Error| {
        Error::io(
            format!(
                "cannot write the report to {} (use -o FILE to write it elsewhere)",
                output.display()
            ),
            e,
        )
    };
    let tmp = output.with_file_name(format!(".{}.tmp-{}", file_name(output), std::process::id()));
    let file = File::create(&tmp).map_err(hint)?;
    let mut out = BufWriter::with_capacity(256 * 1024, file);
    let meta = html::Meta {
        generated_ms: crate::timefmt::now_ms(),
        version: env!("CARGO_PKG_VERSION"),
    };
    let result = html::render(s, &meta, &mut out, &mut |i, w| {
        let m = &s.machines[i];
        let file = paths
            .iter()
            .find(|p| file_name(p) == m.file_name)
            .ok_or_else(|| std::io::Error::other("not found"))
            .and_then(File::open);
        match file {
            Ok(f) => {
                let mut r =
                    progress::Counted::new(BufReader::with_capacity(256 * 1024, f), progress);
                html::write_log_lines(m, i, &mut r, w)?;
            }
            // Read once already, so the summary stands; say why the text is missing.
            Err(e) => write!(
                w,
                "(the file could not be read again to show it here: {})",
                html::escape(&e.to_string())
            )?,
        }
        progress.file_done();
        Ok(())
    })
    .and_then(|_| out.flush())
    .and_then(|_| out.get_ref().sync_all());
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(hint(e));
    }
    let written = out.get_ref().metadata().map(|m| m.len()).unwrap_or(0);
    drop(out);
    std::fs::rename(&tmp, output).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        hint(e)
    })?;
    Ok(written)
}

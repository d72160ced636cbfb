//! What the status location shows: live sessions and totals, as JSON or in the Prometheus
//! text format. Plain data copied out of the shared zone under its lock and rendered after
//! the lock is released; nginx-free and unit-tested.

#![forbid(unsafe_code)]

use std::fmt::Write as _;

use crate::protocol::json::quote as json_str;
use crate::relay::core::Cause;

/// Bytes of text kept in a fixed-size field (shared memory holds no pointers).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Text<const N: usize> {
    len: u8,
    bytes: [u8; N],
}

impl<const N: usize> Text<N> {
    /// `s` cut to N bytes (and 255) at a UTF-8 boundary.
    pub fn new(s: &[u8]) -> Self {
        let mut n = s.len().min(N).min(usize::from(u8::MAX));
        while n > 0 && core::str::from_utf8(&s[..n]).is_err() {
            n -= 1;
        }
        let mut bytes = [0u8; N];
        bytes[..n].copy_from_slice(&s[..n]);
        Self {
            len: n as u8,
            bytes,
        }
    }

    pub fn as_str(&self) -> &str {
        let b = self.bytes.get(..usize::from(self.len)).unwrap_or_default();
        core::str::from_utf8(b).unwrap_or_default()
    }
}

/// One live session.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Session {
    pub id: Text<32>,
    pub pid: i64,
    /// When the owning worker's process started (Linux's `/proc` start time; 0: unknown):
    /// with `pid`, it names the worker, so a process that reuses the pid is not the owner.
    pub owner_start: u64,
    pub client: Text<48>,
    pub target: Text<96>,
    pub location: Text<64>,
    /// Unix time of the 101.
    pub started: u64,
    pub from_client: u64,
    pub to_client: u64,
    pub frames_from_client: u64,
    /// The security type the gateway logged in to the VNC server with (empty: it did
    /// not), and the desktop name the server gave.
    pub rfb_security: Text<16>,
    pub desktop: Text<64>,
    /// `DELETE` asked the owning worker to end it.
    pub revoke: bool,
}

/// Counters over the zone's life (they survive reloads with the zone).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Totals {
    pub accepted: u64,
    /// Sessions that worked but found the zone full.
    pub untracked: u64,
    pub closed: [u64; Cause::ALL.len()],
    /// Sessions of a worker that died (their records were swept).
    pub worker_exit: u64,
    /// Payload bytes of sessions that ended.
    pub from_client: u64,
    pub to_client: u64,
}

impl Totals {
    pub fn closed(&mut self, cause: Cause, from_client: u64, to_client: u64) {
        if let Some(n) = self.closed.get_mut(cause.index()) {
            *n += 1;
        }
        self.from_client += from_client;
        self.to_client += to_client;
    }

    /// A dead worker's session, with the bytes its record last had: live bytes become
    /// ended bytes, so the byte counters never go down.
    pub fn worker_exited(&mut self, from_client: u64, to_client: u64) {
        self.worker_exit += 1;
        self.from_client += from_client;
        self.to_client += to_client;
    }

    /// Ended sessions by cause: the relay's causes, then `worker_exit`.
    fn by_cause(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Cause::ALL
            .iter()
            .enumerate()
            .map(|(i, c)| (c.as_str(), self.closed.get(i).copied().unwrap_or_default()))
            .chain([("worker_exit", self.worker_exit)])
    }
}

/// What is known about the process that has a record's pid now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// No such process.
    Gone,
    /// A process has this pid; its start time, when it could be read.
    Running(Option<u64>),
}

/// Whether a record's owning worker still runs: a process has its pid and, when both start
/// times are known, started when the worker did (otherwise the pid was reused). Unsure
/// means alive: freeing a live worker's record would let it write into freed memory.
pub fn owner_alive(owner_start: u64, probe: Probe) -> bool {
    match probe {
        Probe::Gone => false,
        Probe::Running(Some(start)) if owner_start != 0 => start == owner_start,
        Probe::Running(_) => true,
    }
}

/// For each record's owner (pid, start time), whether it still runs; each pid is probed
/// once (the zone's lock is held meanwhile).
pub fn owners_alive(owners: &[(i64, u64)], mut probe: impl FnMut(i64) -> Probe) -> Vec<bool> {
    let mut seen: Vec<(i64, Probe)> = Vec::new();
    owners
        .iter()
        .map(|&(pid, start)| {
            let p = match seen.iter().find(|(q, _)| *q == pid) {
                Some(&(_, p)) => p,
                None => {
                    let p = probe(pid);
                    seen.push((pid, p));
                    p
                }
            };
            owner_alive(start, p)
        })
        .collect()
}

/// The start time (field 22, clock ticks since boot) in a `/proc/<pid>/stat` line. Field 2,
/// the command name, is in parentheses and may hold spaces and parentheses itself: fields
/// are counted from the last `)`.
pub fn proc_start_time(stat: &[u8]) -> Option<u64> {
    let at = stat.iter().rposition(|&b| b == b')')?;
    let rest = core::str::from_utf8(stat.get(at + 1..)?).ok()?;
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
}

pub struct Snapshot {
    pub sessions: Vec<Session>,
    pub totals: Totals,
}

/// The form `?format=` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Prometheus,
}

impl Format {
    /// From the request's query string; None for a format we do not know.
    pub fn from_args(args: &[u8]) -> Option<Self> {
        let value = args
            .split(|&b| b == b'&')
            .find_map(|kv| kv.strip_prefix(b"format="));
        match value {
            None | Some(b"json") => Some(Self::Json),
            Some(b"prometheus") => Some(Self::Prometheus),
            Some(_) => None,
        }
    }
}

/// The session id in a URI that ends with `/sessions/<id>` (any status location, prefix
/// or regular expression).
pub fn session_id(uri: &[u8]) -> Option<&[u8]> {
    let at = uri.windows(10).rposition(|w| w == b"/sessions/")?;
    let id = uri.get(at + 10..)?;
    let ok = !id.is_empty() && id.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-');
    ok.then_some(id)
}

impl Snapshot {
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Json => self.json(),
            Format::Prometheus => self.prometheus(),
        }
    }

    fn live_bytes(&self) -> (u64, u64) {
        self.sessions
            .iter()
            .fold((0, 0), |(f, t), s| (f + s.from_client, t + s.to_client))
    }

    fn json(&self) -> String {
        let mut out = String::from("{\"sessions\":[");
        for (i, s) in self.sessions.iter().enumerate() {
            let _ = write!(
                out,
                "{}{{\"id\":{},\"pid\":{},\"client\":{},\"target\":{},\"location\":{},\
                 \"started\":{},\"bytes_from_client\":{},\"bytes_to_client\":{},\
                 \"frames_from_client\":{}}}",
                if i > 0 { "," } else { "" },
                json_str(s.id.as_str()),
                s.pid,
                json_str(s.client.as_str()),
                json_str(s.target.as_str()),
                json_str(s.location.as_str()),
                s.started,
                s.from_client,
                s.to_client,
                s.frames_from_client
            );
            if !s.rfb_security.as_str().is_empty() {
                out.pop();
                let _ = write!(
                    out,
                    ",\"rfb_security\":{},\"desktop\":{}}}",
                    json_str(s.rfb_security.as_str()),
                    json_str(s.desktop.as_str())
                );
            }
        }
        let t = &self.totals;
        let (live_from, live_to) = self.live_bytes();
        let _ = write!(
            out,
            "],\"active\":{},\"accepted\":{},\"untracked\":{},\"closed\":{{",
            self.sessions.len(),
            t.accepted,
            t.untracked
        );
        for (i, (cause, n)) in t.by_cause().enumerate() {
            let _ = write!(out, "{}\"{cause}\":{n}", if i > 0 { "," } else { "" });
        }
        let _ = writeln!(
            out,
            "}},\"bytes_from_client\":{},\"bytes_to_client\":{}}}",
            t.from_client + live_from,
            t.to_client + live_to
        );
        out
    }

    /// Live sessions grouped by target: (target, sessions, from_client, to_client), in
    /// the byte order of the target (Rust's `str` order), so labels keep their order from
    /// scrape to scrape. Sorted, then grouped in one pass: a search per session would be
    /// quadratic, and a scrape of thousands of sessions runs on a worker's event loop.
    fn by_target(&self) -> Vec<(&str, u64, u64, u64)> {
        let mut sorted: Vec<(&str, u64, u64)> = self
            .sessions
            .iter()
            .map(|s| (s.target.as_str(), s.from_client, s.to_client))
            .collect();
        sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut targets: Vec<(&str, u64, u64, u64)> = Vec::new();
        for (target, from, to) in sorted {
            match targets.last_mut() {
                Some(e) if e.0 == target => {
                    e.1 += 1;
                    e.2 += from;
                    e.3 += to;
                }
                _ => targets.push((target, 1, from, to)),
            }
        }
        targets
    }

    fn prometheus(&self) -> String {
        let mut out = String::new();
        let t = &self.totals;
        let targets = self.by_target();
        metric(
            &mut out,
            "websockify_sessions",
            "gauge",
            "Live WebSocket sessions, by target.",
        );
        for (target, n, ..) in &targets {
            let _ = writeln!(
                out,
                "websockify_sessions{{target=\"{}\"}} {n}",
                label(target)
            );
        }
        metric(
            &mut out,
            "websockify_sessions_accepted_total",
            "counter",
            "Sessions that were answered with 101.",
        );
        let _ = writeln!(out, "websockify_sessions_accepted_total {}", t.accepted);
        metric(
            &mut out,
            "websockify_sessions_closed_total",
            "counter",
            "Sessions that ended, by cause.",
        );
        for (cause, n) in t.by_cause() {
            let _ = writeln!(
                out,
                "websockify_sessions_closed_total{{cause=\"{cause}\"}} {n}"
            );
        }
        metric(
            &mut out,
            "websockify_sessions_untracked_total",
            "counter",
            "Sessions that worked but were not recorded: the zone was full.",
        );
        let _ = writeln!(out, "websockify_sessions_untracked_total {}", t.untracked);
        metric(
            &mut out,
            "websockify_payload_bytes_total",
            "counter",
            "Payload bytes relayed by ended and live sessions, by direction.",
        );
        let (live_from, live_to) = self.live_bytes();
        let _ = writeln!(
            out,
            "websockify_payload_bytes_total{{direction=\"from_client\"}} {}",
            t.from_client + live_from
        );
        let _ = writeln!(
            out,
            "websockify_payload_bytes_total{{direction=\"to_client\"}} {}",
            t.to_client + live_to
        );
        metric(
            &mut out,
            "websockify_live_payload_bytes",
            "gauge",
            "Payload bytes relayed so far by live sessions, by target and direction.",
        );
        for (target, _, from, to) in &targets {
            let target = label(target);
            let _ = writeln!(
                out,
                "websockify_live_payload_bytes{{target=\"{target}\",direction=\"from_client\"}} {from}"
            );
            let _ = writeln!(
                out,
                "websockify_live_payload_bytes{{target=\"{target}\",direction=\"to_client\"}} {to}"
            );
        }
        out
    }
}

fn metric(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A Prometheus label value: backslash, quote and newline escaped.
fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: &str, target: &str, from: u64, to: u64) -> Session {
        Session {
            id: Text::new(id.as_bytes()),
            pid: 42,
            owner_start: 0,
            client: Text::new(b"127.0.0.1"),
            target: Text::new(target.as_bytes()),
            location: Text::new(b"/websockify"),
            started: 1_700_000_000,
            from_client: from,
            to_client: to,
            frames_from_client: 3,
            rfb_security: Text::new(b""),
            desktop: Text::new(b""),
            revoke: false,
        }
    }

    fn snapshot() -> Snapshot {
        let mut totals = Totals {
            accepted: 5,
            untracked: 1,
            ..Totals::default()
        };
        totals.closed(Cause::Client, 10, 20);
        totals.closed(Cause::Revoked, 1, 2);
        totals.worker_exited(4, 8);
        Snapshot {
            sessions: vec![
                session("42-7", "127.0.0.1:5901", 100, 200),
                session("42-9", "127.0.0.1:5901", 1, 2),
                session("43-1", "vnc\"b\\", 0, 5),
            ],
            totals,
        }
    }

    #[test]
    fn json_lists_sessions_and_totals() {
        let j = snapshot().render(Format::Json);
        assert!(j.starts_with("{\"sessions\":[{\"id\":\"42-7\",\"pid\":42,\"client\":\"127.0.0.1\",\"target\":\"127.0.0.1:5901\",\"location\":\"/websockify\",\"started\":1700000000,\"bytes_from_client\":100,\"bytes_to_client\":200,\"frames_from_client\":3}"), "{j}");
        assert!(j.contains("\"target\":\"vnc\\\"b\\\\\""), "{j}");
        assert!(
            j.contains("],\"active\":3,\"accepted\":5,\"untracked\":1,\"closed\":{\"client\":1,"),
            "{j}"
        );
        assert!(
            j.contains("\"revoked\":1,\"internal\":0,\"worker_exit\":1}"),
            "{j}"
        );
        assert!(
            j.ends_with(",\"bytes_from_client\":116,\"bytes_to_client\":237}\n"),
            "{j}"
        );
    }

    #[test]
    fn json_shows_the_rfb_login_only_for_sessions_that_had_one() {
        let rfb = Session {
            rfb_security: Text::new(b"x509vnc"),
            desktop: Text::new(b"lab \"3\""),
            ..session("1-1", "vnc:5901", 0, 0)
        };
        let j = Snapshot {
            sessions: vec![session("1-2", "vnc:5902", 0, 0), rfb],
            totals: Totals::default(),
        }
        .render(Format::Json);
        assert!(j.contains(r#""frames_from_client":3},{"id":"1-1""#), "{j}");
        assert!(
            j.contains(
                r#""frames_from_client":3,"rfb_security":"x509vnc","desktop":"lab \"3\""}]"#
            ),
            "{j}"
        );
    }

    /// Every string field is a JSON string whatever bytes it holds: quotes, backslashes
    /// and control characters are escaped, so the document stays parseable.
    #[test]
    fn json_escapes_every_string_field() {
        let s = Session {
            id: Text::new(b"i\"d\\\x01"),
            client: Text::new(b"c\"l\\\x1f"),
            target: Text::new(b"t\"g\\\n"),
            location: Text::new(b"/l\"o\\\t"),
            ..session("x", "x", 7, 8)
        };
        let j = Snapshot {
            sessions: vec![s],
            totals: Totals::default(),
        }
        .render(Format::Json);
        let want = concat!(
            r#"{"sessions":[{"id":"i\"d\\\u0001","pid":42,"client":"c\"l\\\u001f","#,
            r#""target":"t\"g\\\u000a","location":"/l\"o\\\u0009","started":1700000000,"#,
            r#""bytes_from_client":7,"bytes_to_client":8,"frames_from_client":3}],"#,
            r#""active":1,"accepted":0,"untracked":0,"closed":{"client":0,"target_eof":0,"#,
            r#""target_error":0,"idle":0,"send_timeout":0,"protocol_error":0,"shutdown":0,"#,
            r#""lifetime":0,"revoked":0,"internal":0,"worker_exit":0},"bytes_from_client":7,"#,
            r#""bytes_to_client":8}"#,
            "\n"
        );
        assert_eq!(j, want);
    }

    #[test]
    fn prometheus_has_help_type_and_labels() {
        let p = snapshot().render(Format::Prometheus);
        for line in [
            "# TYPE websockify_sessions gauge",
            "websockify_sessions{target=\"127.0.0.1:5901\"} 2",
            "websockify_sessions{target=\"vnc\\\"b\\\\\"} 1",
            "websockify_sessions_accepted_total 5",
            "websockify_sessions_closed_total{cause=\"client\"} 1",
            "websockify_sessions_closed_total{cause=\"idle\"} 0",
            "websockify_sessions_closed_total{cause=\"worker_exit\"} 1",
            "websockify_sessions_untracked_total 1",
            "websockify_payload_bytes_total{direction=\"from_client\"} 116",
            "websockify_live_payload_bytes{target=\"127.0.0.1:5901\",direction=\"to_client\"} 202",
        ] {
            assert!(p.lines().any(|l| l == line), "missing {line:?} in\n{p}");
        }
        assert!(p.ends_with('\n'));
    }

    /// Not a check: `scripts/bench` runs it (`--ignored --nocapture`) to print how long
    /// a worker spends rendering a full zone, one desktop per session, Prometheus
    /// against JSON of the same sessions (the linear reference).
    #[test]
    #[ignore]
    fn bench_scrape() {
        for n in [10_000usize, 30_000] {
            let sessions = (0..n)
                .map(|i| {
                    let target = format!("10.{}.{}.{}:5900", i >> 16, (i >> 8) & 255, i & 255);
                    session(&format!("4242-{i}"), &target, i as u64, 2 * i as u64)
                })
                .collect();
            let snap = Snapshot {
                sessions,
                totals: Totals::default(),
            };
            let ms = |format: Format| {
                let start = std::time::Instant::now();
                let bytes: usize = (0..5).map(|_| snap.render(format).len()).sum();
                (start.elapsed().as_secs_f64() * 1000.0 / 5.0, bytes / 5)
            };
            let (json, json_len) = ms(Format::Json);
            let (prom, prom_len) = ms(Format::Prometheus);
            println!(
                "scrape: {n} sessions on {n} targets: prometheus {prom:.1} ms ({prom_len} bytes), \
                 json {json:.1} ms ({json_len} bytes), prometheus/json {:.2}",
                prom / json
            );
        }
    }

    /// Many targets, each with sessions scattered among the others': one line per target
    /// with the sums of its sessions, targets in byte order (so "B" before "a", "a:10"
    /// before "a:9").
    #[test]
    fn prometheus_groups_many_targets_in_byte_order() {
        let mut names: Vec<String> = (0..600)
            .map(|k| format!("10.{}.0.{k}:5900", k % 7))
            .collect();
        names.extend(["a:9", "a:10", "B:1", "\u{e9}:1", "q\"b:1"].map(String::from));
        let sessions: Vec<Session> = (0..3 * names.len())
            .map(|i| {
                let name = &names[(i * 7919) % names.len()];
                session(&i.to_string(), name, i as u64, 3 * i as u64 + 1)
            })
            .collect();
        let mut want = std::collections::BTreeMap::new();
        for s in &sessions {
            let e = want
                .entry(s.target.as_str().to_owned())
                .or_insert((0, 0, 0));
            *e = (e.0 + 1, e.1 + s.from_client, e.2 + s.to_client);
        }
        assert_eq!(want.len(), names.len());
        assert!(
            want.values().all(|e| e.0 == 3),
            "every target has three sessions"
        );
        let p = Snapshot {
            sessions,
            totals: Totals::default(),
        }
        .render(Format::Prometheus);
        let got =
            |prefix: &str| -> Vec<&str> { p.lines().filter(|l| l.starts_with(prefix)).collect() };
        let sessions: Vec<String> = want
            .iter()
            .map(|(t, e)| format!("websockify_sessions{{target=\"{}\"}} {}", label(t), e.0))
            .collect();
        assert_eq!(got("websockify_sessions{"), sessions);
        let bytes: Vec<String> = want
            .iter()
            .flat_map(|(t, e)| {
                let t = label(t);
                [
                    format!("websockify_live_payload_bytes{{target=\"{t}\",direction=\"from_client\"}} {}", e.1),
                    format!("websockify_live_payload_bytes{{target=\"{t}\",direction=\"to_client\"}} {}", e.2),
                ]
            })
            .collect();
        assert_eq!(got("websockify_live_payload_bytes{"), bytes);
        let first: Vec<&str> = got("websockify_sessions{").into_iter().take(2).collect();
        assert_eq!(
            first,
            [
                "websockify_sessions{target=\"10.0.0.0:5900\"} 3",
                "websockify_sessions{target=\"10.0.0.105:5900\"} 3"
            ]
        );
        let tail: Vec<&str> = got("websockify_sessions{")
            .into_iter()
            .rev()
            .take(5)
            .collect();
        assert_eq!(
            tail,
            [
                "websockify_sessions{target=\"\u{e9}:1\"} 3",
                "websockify_sessions{target=\"q\\\"b:1\"} 3",
                "websockify_sessions{target=\"a:9\"} 3",
                "websockify_sessions{target=\"a:10\"} 3",
                "websockify_sessions{target=\"B:1\"} 3",
            ]
        );
    }

    #[test]
    fn query_and_paths() {
        assert_eq!(Format::from_args(b""), Some(Format::Json));
        assert_eq!(
            Format::from_args(b"x=1&format=prometheus"),
            Some(Format::Prometheus)
        );
        assert_eq!(Format::from_args(b"format=xml"), None);
        assert_eq!(session_id(b"/status/sessions/42-7"), Some(&b"42-7"[..]));
        assert_eq!(session_id(b"/a/b/sessions/42-7"), Some(&b"42-7"[..]));
        assert_eq!(session_id(b"/status/sessions/"), None);
        assert_eq!(session_id(b"/status/sessions/../x"), None);
        assert_eq!(session_id(b"/status/sessions/1/x"), None);
        assert_eq!(session_id(b"/status"), None);
    }

    /// A worker that died is told apart from a process that got its pid afterwards by its
    /// start time; when a start time is unknown, only the pid counts.
    #[test]
    fn owner_alive_needs_the_pid_and_the_start_time() {
        assert!(owner_alive(500, Probe::Running(Some(500))));
        assert!(!owner_alive(500, Probe::Running(Some(900))), "pid reused");
        assert!(!owner_alive(500, Probe::Gone));
        assert!(owner_alive(500, Probe::Running(None)), "unreadable: kept");
        assert!(
            owner_alive(0, Probe::Running(Some(900))),
            "recorded without /proc"
        );
        assert!(!owner_alive(0, Probe::Gone));
    }

    /// Records of the dead worker 7 go, and those of worker 7's old lifetime under a reused
    /// pid 9; each pid is probed once.
    #[test]
    fn owners_alive_probes_each_pid_once() {
        let mut probed = Vec::new();
        let owners = [(7, 100), (8, 200), (7, 100), (9, 300), (9, 50), (8, 200)];
        let alive = owners_alive(&owners, |pid| {
            probed.push(pid);
            match pid {
                7 => Probe::Gone,
                9 => Probe::Running(Some(300)),
                _ => Probe::Running(Some(200)),
            }
        });
        assert_eq!(alive, [false, true, false, true, false, true]);
        assert_eq!(probed, [7, 8, 9]);
    }

    #[test]
    fn proc_start_time_counts_fields_after_the_command_name() {
        let line = b"4242 (nginx: worker) S 4241 4241 4241 0 -1 4194624 183 0 0 0 0 0 0 0 \
                     20 0 1 0 8812345 12345678 2048 18446744073709551615 1 1 0 0 0 0 0\n";
        assert_eq!(proc_start_time(line), Some(8_812_345));
        let odd = b"1 (a) b (c) S 0 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 77 0 0\n";
        assert_eq!(proc_start_time(odd), Some(77));
        assert_eq!(proc_start_time(b"1 (x) S 0 1"), None);
        assert_eq!(proc_start_time(b"garbage"), None);
    }

    #[test]
    fn text_is_cut_at_a_char_boundary() {
        let t: Text<4> = Text::new("aé€".as_bytes());
        assert_eq!(t.as_str(), "aé");
    }
}

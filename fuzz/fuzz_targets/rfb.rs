//! The RFB machines over arbitrary peers. Input: a policy byte (bit i allows the i-th type
//! of `Security::ALL`), a read-size byte, then the bytes a VNC server (and after a 0xff
//! 0xfe marker, a browser) sends. Checks, whatever the peer says: the gateway chooses
//! only allowed types, never sends the password but inside Plain, consumes only what it
//! was given, and the view-only filter's verdicts do not depend on how reads are cut, nor
//! do the relay gate's (the browser's handshake, then the filter, judged in place).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ngx_http_websockify_module::protocol::rfb::filter::{Filter, Verdict};
use ngx_http_websockify_module::protocol::rfb::greet::Greet;
use ngx_http_websockify_module::protocol::rfb::login::{Credentials, Login, Progress};
use ngx_http_websockify_module::protocol::rfb::{Auth, Secret, Security};
use ngx_http_websockify_module::relay::gate::Gate;

const PASSWORD: &[u8] = b"Zq9!x#Lw";

fuzz_target!(|data: &[u8]| {
    let [policy, chunk, rest @ ..] = data else {
        return;
    };
    let chunk = usize::from(*chunk % 16) + 1;
    let policy: Vec<Security> = Security::ALL
        .into_iter()
        .enumerate()
        .filter(|(i, _)| policy & (1 << (i % 8)) != 0)
        .map(|(_, s)| s)
        .collect();
    let split = rest.windows(2).position(|w| w == [0xff, 0xfe]);
    let (server, client) = match split {
        Some(i) => (&rest[..i], &rest[i + 2..]),
        None => (rest, &[][..]),
    };
    login(&policy, server, chunk);
    greet(client, chunk);
    let whole = filter(client, client.len().max(1));
    assert_eq!(
        filter(client, chunk),
        whole,
        "the filter's verdicts depend on read sizes"
    );
    for view_only in [false, true] {
        assert_eq!(
            gate(client, chunk, view_only),
            gate(client, client.len().max(1), view_only),
            "the gate's verdicts depend on read sizes"
        );
    }
});

/// What the gate lets through to the server, and whether it refused the browser.
fn gate(client: &[u8], chunk: usize, view_only: bool) -> (Vec<u8>, bool) {
    let mut g = Gate::new(view_only);
    let (mut buf, mut clear, mut passed) = (Vec::new(), 0, Vec::new());
    for part in client.chunks(chunk) {
        buf.extend_from_slice(part);
        let last = buf.len();
        let (c, l, refused) = g.judge(&mut buf, clear, last);
        assert!(c <= l && l <= last, "judge grew the payload");
        buf.truncate(l);
        passed.extend(buf.drain(..c));
        if refused.is_some() {
            return (passed, true);
        }
        clear = 0;
        let mut out = [0u8; 64];
        while g.take_output(&mut out) > 0 {}
    }
    (passed, false)
}

fn login(policy: &[Security], server: &[u8], chunk: usize) {
    let creds = Credentials {
        username: Secret::new(b"user".to_vec()),
        password: Secret::new(PASSWORD.to_vec()),
    };
    let mut l = Login::new(policy, creds);
    let mut pending = Vec::new();
    for part in server.chunks(chunk) {
        pending.extend_from_slice(part);
        let Ok((used, progress)) = l.input(&pending) else {
            return;
        };
        assert!(used <= pending.len());
        pending.drain(..used);
        let sent = l.take_output();
        if let Some(s) = l.security() {
            assert!(policy.contains(&s), "chose {s:?} outside the policy");
            if s.auth() != Auth::Plain {
                assert!(
                    !contains(sent.as_bytes(), PASSWORD),
                    "the password went out under {s:?}"
                );
            }
        } else {
            assert!(!contains(sent.as_bytes(), PASSWORD));
        }
        match progress {
            Progress::Reading => {}
            Progress::StartTls(_) => l.tls_started(),
            Progress::Done(done) => {
                assert!(policy.contains(&done.security));
                return;
            }
        }
    }
}

fn greet(client: &[u8], chunk: usize) {
    let mut g = Greet::new();
    let mut pending = Vec::new();
    for part in client.chunks(chunk) {
        pending.extend_from_slice(part);
        let Ok((used, _)) = g.input(&pending) else {
            return;
        };
        assert!(used <= pending.len());
        pending.drain(..used);
        assert!(!contains(&g.take_output(), PASSWORD));
    }
}

/// The bytes passed, and where the filter stopped at an unknown type.
fn filter(client: &[u8], chunk: usize) -> (Vec<u8>, Option<u8>) {
    let mut f = Filter::new();
    let (mut pending, mut passed) = (Vec::new(), Vec::new());
    for part in client.chunks(chunk) {
        pending.extend_from_slice(part);
        loop {
            match f.next(&mut pending) {
                Verdict::Pass(n) => passed.extend(pending.drain(..n)),
                Verdict::Drop(n) => drop(pending.drain(..n)),
                Verdict::Reading => break,
                Verdict::Unknown(t) => return (passed, Some(t)),
            }
        }
    }
    (passed, None)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

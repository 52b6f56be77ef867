//! The guide's Defaults table (`docs/defaults.md`), row by row, against the defaults the code
//! has: a row whose number changes on one side only, or a row added
//! without a pin here, fails this test.

use std::time::Duration;

use crate::policy::limits::{HttpLimits, Limits};
use crate::server::drain::DrainPlan;
use crate::{App, Origins, Server};

/// The table's rows: setting, default (the first two cells).
fn table() -> Vec<(String, String)> {
    let readme = include_str!("../../docs/defaults.md");
    let section = readme
        .split("# Defaults\n")
        .nth(1)
        .expect("docs/defaults.md has its Defaults table");
    section
        .lines()
        .skip_while(|l| !l.starts_with("| setting"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells[1].to_owned(), cells[2].to_owned())
        })
        .collect()
}

fn size(bytes: usize) -> String {
    match bytes {
        b if b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => b.to_string(),
    }
}

fn secs(d: Duration) -> String {
    format!("{} s", d.as_secs())
}

fn count(n: usize) -> String {
    // The README groups thousands with a space: 131 072.
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

fn unlimited<T>(limit: Option<T>) -> String {
    assert!(limit.is_none());
    "unlimited".into()
}

fn off<T>(setting: Option<T>) -> String {
    assert!(setting.is_none());
    "off".into()
}

#[test]
fn every_row_of_the_readme_defaults_table_is_the_codes_default() {
    let limits = Limits::default();
    let http = HttpLimits::default();
    let server = Server::new(App::new());
    let drain = DrainPlan::default();
    let wsway_js = include_str!("../js/wsway.js");
    // What each row's default cell starts with, from the code.
    let pinned: Vec<(&str, String)> = vec![
        ("max message size", size(limits.max_message_size)),
        ("max frame size", size(limits.max_frame_size)),
        ("max fragments per message", count(limits.max_fragments)),
        (
            "compression (`Compression`, permessage-deflate)",
            off(limits.compression),
        ),
        (
            "idle timeout",
            format!(
                "{}, server ping at half",
                secs(limits.idle_timeout.unwrap())
            ),
        ),
        ("close timeout", secs(limits.close_timeout)),
        (
            "backpressure limit",
            format!("{} buffered", size(limits.backpressure_limit)),
        ),
        ("max connections", unlimited(limits.max_connections)),
        ("allowed origins", {
            assert_eq!(limits.origins, Origins::same_host());
            "the request's own host, and clients that send no `Origin`".into()
        }),
        ("inbound rate limit", off(limits.rate_limit.clone())),
        ("handshake timeout", secs(http.handshake_timeout)),
        ("max request headers", http.max_headers.to_string()),
        ("max request head", size(http.max_header_bytes)),
        (
            "max request body (`App::max_body_bytes`, read by `Request::bytes` / `json`)",
            size(http.max_body_bytes),
        ),
        (
            "connection limit (`Server::connection_limit`, TCP level)",
            unlimited(server.connection_limit),
        ),
        ("HTTP/2 (`Server::http2`)", {
            assert_eq!(server.http2, None);
            "off: HTTP/1.1 only".into()
        }),
        (
            "streams per HTTP/2 connection (`Server::max_streams_per_connection`)",
            {
                let on = Server::new(App::new()).http2();
                format!("{}", on.http2.expect("on"))
            },
        ),
        ("shutdown deadline", secs(server.shutdown_timeout)),
        ("pre-drain delay (`Server::pre_drain_delay`)", {
            assert_eq!(server.drain.pre_delay, Duration::ZERO);
            "0".into()
        }),
        ("drain close (`Server::drain_close_code`)", {
            format!("{}, reason `{}`", drain.code.as_u16(), drain.reason())
        }),
        ("drain window (`Server::drain_window`)", {
            assert_eq!(
                server.drain.window_within(server.shutdown_timeout),
                drain.window
            );
            format!(
                "{} (at most half the shutdown deadline)",
                secs(drain.window)
            )
        }),
        (
            "reconnect hint (`Server::reconnect_window`)",
            secs(drain.reconnect_window),
        ),
        ("history age (`Retention::messages(n)`, `max_age`)", {
            let kept = crate::Retention::messages(7);
            assert_eq!(kept.message_limit(), 7);
            format!(
                "{} min (and at most n messages)",
                kept.age_limit().as_secs() / 60
            )
        }),
        ("per-IP handshake limit (`HandshakeLimit` middleware)", {
            // A middleware: none is installed unless the app adds it.
            assert!(App::new().middleware.is_empty());
            "off".into()
        }),
        ("event reply timeout (`wsway.js`, `timeout`)", {
            assert!(wsway_js.contains("this.options = { timeout: 10000,"));
            "10 s".into()
        }),
    ];
    let rows = table();
    assert_eq!(
        rows.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>(),
        pinned.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        "every row is pinned here, in the guide's order"
    );
    for ((setting, readme), (_, code)) in rows.iter().zip(&pinned) {
        assert_eq!(readme, code, "the guide's default for {setting}");
    }
}

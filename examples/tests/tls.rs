//! wss://: echo over TLS with a certificate made in the test, reloading the
//! certificate under 1 000 open sockets, a bad certificate file, a TLS
//! handshake that never finishes, and the examples' `--tls-cert` with
//! SIGHUP.

mod common;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use async_io::Async;
use async_tungstenite::tungstenite::Message as Frame;
use common::tls::*;
use common::*;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use futures_util::StreamExt;
use wsway::{App, Server, TlsError, on_message};

/// Open sockets the reload test holds while it swaps the certificate.
const OPEN: usize = 1000;

fn echo() -> App {
    let mut app = App::new();
    app.ws(
        "/echo",
        on_message(|ws, msg| {
            ws.send(msg);
        }),
    );
    app.livez("/livez");
    app
}

/// Sends `text` and expects it back.
async fn echoes(ws: &mut Wss, text: &str) -> Result<(), String> {
    within(WAIT, "an echo", async {
        ws.send(Frame::text(text))
            .await
            .map_err(|e| e.to_string())?;
        loop {
            match ws.next().await {
                Some(Ok(Frame::Text(t))) if t.as_str() == text => return Ok(()),
                Some(Ok(Frame::Ping(_) | Frame::Pong(_))) => continue,
                other => return Err(format!("expected {text:?} back, got {other:?}")),
            }
        }
    })
    .await
}

/// Whether the server closed `stream` (EOF or reset) within `limit`.
async fn closed_within(stream: &mut Async<TcpStream>, limit: Duration) -> bool {
    let mut buf = [0u8; 64];
    let read = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => continue,
            }
        }
    };
    futures_lite::future::or(read, async {
        async_io::Timer::after(limit).await;
        false
    })
    .await
}

runtime_tests! {
    async fn wss_echo_with_a_self_signed_certificate(rt) {
        let cert = Cert::self_signed();
        let files = PemFiles::new(&cert);
        let server = rt.start(Server::new(echo()).tls(files.tls())).await;
        let addr = server.local_addr();
        let client = cert.client();

        let mut ws = wss(addr, "/echo", &client).await;
        echoes(&mut ws, "hello over TLS").await.unwrap();
        let big = "x".repeat(200_000);
        echoes(&mut ws, &big).await.unwrap();
        ws.send(Frame::binary(vec![1u8, 2, 3])).await.unwrap();
        assert_eq!(next_message(&mut ws).await, Frame::binary(vec![1u8, 2, 3]));
        ws.close(None).await.unwrap();
        assert!(matches!(next_frame(&mut ws).await, Some(Ok(Frame::Close(_)))));

        // The app's plain routes are https.
        let page = https_get(addr, "/livez", &client).await;
        assert_eq!(status_of(&page), 200, "{page}");

        // A client that does not trust the certificate is refused by its
        // own TLS; a plain ws:// client gets no answer but a closed socket.
        assert!(try_wss(addr, "/echo", &Cert::self_signed().client()).await.is_err());
        let plain = raw(addr, &upgrade_request("/echo", "")).await;
        assert!(!plain.starts_with("HTTP/1.1 101"), "{plain}");

        eventually("every connection gone", || server.tasks() == 0).await;
        server.shutdown();
        within(WAIT, "stopped", server.stopped()).await;
    }

    async fn a_reload_under_a_thousand_open_sockets_drops_none(rt) {
        let (old, new) = (Cert::self_signed(), Cert::self_signed());
        let files = PemFiles::new(&old);
        let server = rt.start(Server::new(echo()).tls(files.tls())).await;
        let addr = server.local_addr();
        let (trust_old, trust_new) = (old.client(), new.client());

        let mut open = Vec::with_capacity(OPEN);
        while open.len() < OPEN {
            let batch = (open.len()..OPEN.min(open.len() + 50)).map(|_| wss(addr, "/echo", &trust_old));
            open.extend(futures_util::future::join_all(batch).await);
        }
        eventually("every socket registered", || server.connections() == OPEN).await;

        files.write(&new);
        server.reload_tls().expect("the new files load");
        // The next handshake gets the new certificate...
        let mut fresh = wss(addr, "/echo", &trust_new).await;
        echoes(&mut fresh, "fresh").await.unwrap();
        assert!(try_wss(addr, "/echo", &trust_old).await.is_err(), "the old certificate is still served");

        // ...and every socket opened before it keeps going.
        let mut answered = 0;
        for chunk in open.chunks_mut(100) {
            let echoed = chunk.iter_mut().enumerate().map(|(i, ws)| async move {
                echoes(ws, &format!("still here {i}")).await
            });
            answered += futures_util::future::join_all(echoed).await.into_iter().filter(Result::is_ok).count();
        }
        assert_eq!(answered, OPEN, "sockets dropped by the reload: {}", OPEN - answered);
        assert_eq!(server.connections(), OPEN + 1);

        drop(open);
        drop(fresh);
        eventually("every connection gone", || server.tasks() == 0).await;
    }

    async fn a_bad_certificate_file_keeps_the_old_certificate(rt) {
        let (cert, other) = (Cert::self_signed(), Cert::self_signed());
        let files = PemFiles::new(&cert);
        let server = rt.start(Server::new(echo()).tls(files.tls())).await;
        let addr = server.local_addr();
        let trust = cert.client();
        let mut open = wss(addr, "/echo", &trust).await;

        files.write_raw("not a certificate\n", &cert.key_pem);
        let err = server.reload_tls().expect_err("garbage loads");
        assert!(matches!(err, TlsError::File { .. }), "{err:?}");
        assert!(err.to_string().contains("cert.pem"), "{err}");

        // A certificate with someone else's key.
        files.write_raw(&other.cert_pem, &cert.key_pem);
        let err = server.reload_tls().expect_err("a mismatched key loads");
        assert!(err.to_string().contains("key.pem"), "{err}");

        std::fs::remove_file(files.key()).unwrap();
        let err = server.reload_tls().expect_err("a missing key loads");
        assert!(matches!(err, TlsError::File { .. }), "{err:?}");

        // The old certificate is still what handshakes get, and the open
        // socket never noticed.
        let mut again = wss(addr, "/echo", &trust).await;
        echoes(&mut again, "still the old one").await.unwrap();
        echoes(&mut open, "undisturbed").await.unwrap();
        // Starting with a bad file fails at once, saying which.
        let err = wsway::Tls::from_pem_files(files.cert(), files.key()).expect_err("loads");
        assert!(err.to_string().contains("key.pem"), "{err}");
    }

    async fn a_rustls_config_is_served_and_replaced_by_api(rt) {
        let (old, new) = (Cert::self_signed(), Cert::self_signed());
        let server = rt.start(Server::new(echo()).tls(config(&old))).await;
        let addr = server.local_addr();
        let mut open = wss(addr, "/echo", &old.client()).await;
        echoes(&mut open, "given a config").await.unwrap();

        let err = server.reload_tls().expect_err("no files to re-read");
        assert!(matches!(err, TlsError::NotFromFiles), "{err:?}");
        server.set_tls_config(config(&new)).unwrap();
        let mut fresh = wss(addr, "/echo", &new.client()).await;
        echoes(&mut fresh, "replaced").await.unwrap();
        assert!(try_wss(addr, "/echo", &old.client()).await.is_err());
        echoes(&mut open, "undisturbed").await.unwrap();

        // A server without TLS says so.
        let plain = rt.start(echo()).await;
        assert!(matches!(plain.reload_tls(), Err(TlsError::NotEnabled)));
    }

    async fn a_stalled_tls_handshake_is_dropped_at_the_handshake_timeout(rt) {
        let cert = Cert::self_signed();
        let files = PemFiles::new(&cert);
        let mut app = echo();
        app.handshake_timeout(Duration::from_millis(400));
        let server = rt.start(Server::new(app).tls(files.tls())).await;
        let addr = server.local_addr();

        // One says nothing; one stops half-way through its ClientHello.
        let mut silent = Async::<TcpStream>::connect(addr).await.unwrap();
        let mut halfway = Async::<TcpStream>::connect(addr).await.unwrap();
        halfway.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00]).await.unwrap();
        eventually("both counted", || server.tasks() == 2).await;

        // Meanwhile everyone else is served.
        let mut ws = wss(addr, "/echo", &cert.client()).await;
        echoes(&mut ws, "not stalled").await.unwrap();

        let started = Instant::now();
        assert!(closed_within(&mut silent, WAIT).await, "a silent client was kept");
        assert!(closed_within(&mut halfway, WAIT).await, "a half handshake was kept");
        assert!(started.elapsed() < Duration::from_secs(3), "dropped after {:?}", started.elapsed());
        drop(ws);
        eventually("every connection gone", || server.tasks() == 0).await;
    }

    async fn the_examples_serve_wss_and_reload_on_sighup(rt) {
        let (old, new) = (Cert::self_signed(), Cert::self_signed());
        let files = PemFiles::new(&old);
        let (cert, key) = (files.cert(), files.key());
        let example = Example::spawn_with(
            env!("CARGO_BIN_EXE_echo"),
            rt,
            &["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()],
        );
        let addr = example.addr;
        let (trust_old, trust_new) = (old.client(), new.client());
        let mut open = wss(addr, "/echo", &trust_old).await;
        echoes(&mut open, "before").await.unwrap();
        let metrics = https_get(addr, "/metrics", &trust_old).await;
        assert_eq!(status_of(&metrics), 200, "{metrics}");
        assert!(metrics.contains("wsway_connections_open"), "{metrics}");

        // A bad file: reported, and the old certificate stays.
        files.write_raw("garbage\n", &old.key_pem);
        example.signal("-HUP");
        eventually("the failed reload reported", || {
            example.output().contains("certificate reload failed")
        })
        .await;
        let mut still = wss(addr, "/echo", &trust_old).await;
        echoes(&mut still, "old").await.unwrap();

        // A good one: new handshakes get it within a second of SIGHUP.
        files.write(&new);
        example.signal("-HUP");
        let signalled = Instant::now();
        loop {
            if let Ok(mut ws) = try_wss(addr, "/echo", &trust_new).await {
                echoes(&mut ws, "new").await.unwrap();
                break;
            }
            assert!(signalled.elapsed() < Duration::from_secs(1), "no new certificate a second after SIGHUP");
            async_io::Timer::after(Duration::from_millis(20)).await;
        }
        echoes(&mut open, "after").await.unwrap();
        assert!(example.output().contains("listening on"), "{}", example.output());
    }
}

/// A rustls configuration built by the application, as `Tls::from_config`
/// takes it.
fn config(cert: &Cert) -> wsway::tls::rustls::ServerConfig {
    use rustls::pki_types::{PrivateKeyDer, pem::PemObject};
    use wsway::tls::rustls;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).unwrap();
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der.clone()], key)
        .unwrap()
}

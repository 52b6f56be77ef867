//! permessage-deflate (RFC 7692) on a real socket: the offer answered,
//! messages inflated and compressed both ways, a route without it that
//! ignores the offer, a message that inflates to exactly the limit taken
//! and one byte more refused with 1009, and a compression bomb closed with
//! 1009 while the server goes on (how much a bomb makes the server inflate
//! is counted in `wsway::protocol::deflate`'s tests). (Autobahn's groups 12 and 13 check the rest.)

mod common;

use common::*;
use flate2::{Compress, Compression as Level, Decompress, FlushCompress, FlushDecompress};
use futures_lite::AsyncWriteExt;
use wsway::{App, Compression, on_message};

/// The compressed routes' message limit.
const LIMIT: usize = 1 << 20;

const OFFER: &str = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n";

fn app() -> App {
    let mut app = App::new();
    let echo = || {
        on_message(|ws, msg| {
            ws.send(msg);
        })
    };
    app.ws("/z", echo())
        .compression(Compression::dedicated().threshold(16))
        .limits(|l| l.max_message_size(LIMIT));
    app.ws("/shared", echo())
        .compression(Compression::shared().threshold(16))
        .limits(|l| l.max_message_size(LIMIT));
    app.ws("/plain", echo());
    app.ws("/ext", Agreed)
        .compression(Compression::shared().threshold(1 << 20));
    app
}

/// Says what `extensions()` reports.
struct Agreed;

impl wsway::Handler for Agreed {
    type Data = ();

    async fn open(&self, ws: &mut wsway::Ws<()>) {
        let agreed = format!("extensions: {:?}", ws.extensions());
        ws.send(agreed);
    }
}

/// Raw DEFLATE as a client compresses a message: sync flush, tail off.
fn compress(zlib: &mut Compress, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 1024);
    zlib.compress_vec(data, &mut out, FlushCompress::Sync)
        .unwrap();
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

fn inflate(zlib: &mut Decompress, data: &[u8]) -> Vec<u8> {
    let mut input = data.to_vec();
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut out = Vec::with_capacity(1 << 20);
    zlib.decompress_vec(&input, &mut out, FlushDecompress::Sync)
        .unwrap();
    out
}

runtime_tests! {
    async fn messages_are_inflated_and_compressed_both_ways(rt) {
        let server = rt.start(app()).await;
        for path in ["/z", "/shared"] {
            let (mut s, head) = upgraded_raw_with(server.local_addr(), path, OFFER).await;
            let head = head.to_ascii_lowercase();
            assert!(head.contains("sec-websocket-extensions: permessage-deflate"), "{head}");
            let takeover = path == "/z";
            assert_eq!(head.contains("no_context_takeover"), !takeover, "{head}");
            // RFC 7692 §7.2.3.1: "Hello" compressed; short, so it comes
            // back uncompressed.
            let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
            s.write_all(&masked_frame(0xc1, &hello)).await.unwrap();
            assert_eq!(read_raw_frame(&mut s).await, (0x81, b"Hello".to_vec()));
            // Longer ones come back compressed (RSV1), twice with the same
            // client window where it is kept.
            let mut client = Compress::new(Level::default(), false);
            let mut reader = Decompress::new(false);
            for round in 0..2 {
                let text = format!("round {round}: {}", "wsway ".repeat(200));
                let packed = compress(&mut client, text.as_bytes());
                s.write_all(&masked_frame(0xc1, &packed)).await.unwrap();
                let (first, payload) = read_raw_frame(&mut s).await;
                assert_eq!(first, 0xc1, "FIN, RSV1, text");
                assert!(payload.len() < text.len() / 4, "{} of {}", payload.len(), text.len());
                if !takeover {
                    reader = Decompress::new(false);
                    client = Compress::new(Level::default(), false);
                }
                assert_eq!(inflate(&mut reader, &payload), text.as_bytes());
            }
        }
    }

    async fn extensions_reports_what_the_upgrade_agreed(rt) {
        let server = rt.start(app()).await;
        let (mut s, _) = upgraded_raw_with(server.local_addr(), "/ext", OFFER).await;
        let said = String::from_utf8(read_raw_frame(&mut s).await.1).unwrap();
        let agreed = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
        assert_eq!(said, format!("extensions: {agreed:?}"));
        let (mut s, _) = upgraded_raw_with(server.local_addr(), "/ext", "").await;
        let said = String::from_utf8(read_raw_frame(&mut s).await.1).unwrap();
        assert_eq!(said, format!("extensions: {:?}", ""));
    }

    async fn a_route_without_compression_ignores_the_offer(rt) {
        let server = rt.start(app()).await;
        let (mut s, head) = upgraded_raw_with(server.local_addr(), "/plain", OFFER).await;
        assert!(!head.to_ascii_lowercase().contains("sec-websocket-extensions"), "{head}");
        // RSV1 without the extension agreed: a protocol error.
        s.write_all(&masked_frame(0xc1, b"x")).await.unwrap();
        let (first, payload) = read_raw_frame(&mut s).await;
        assert_eq!((first, &payload[..2]), (0x88, &1002u16.to_be_bytes()[..]));
    }

    async fn a_message_inflating_to_exactly_the_limit_is_taken_and_one_byte_more_is_1009(rt) {
        let server = rt.start(app()).await;
        let addr = server.local_addr();
        let exact: Vec<u8> = (0..LIMIT).map(|n| (n % 251) as u8).collect();
        let over = [&exact[..], &[0u8]].concat();
        for path in ["/z", "/shared"] {
            // Exactly the limit, inflated: echoed whole (compressed back).
            let (mut s, _) = upgraded_raw_with(addr, path, OFFER).await;
            let packed = compress(&mut Compress::new(Level::default(), false), &exact);
            assert!(packed.len() < LIMIT / 4, "{path}: {}", packed.len());
            s.write_all(&masked_frame(0xc2, &packed)).await.unwrap();
            let (first, payload) = read_raw_frame(&mut s).await;
            assert_eq!(first, 0xc2, "{path}: FIN, RSV1, binary");
            assert!(inflate(&mut Decompress::new(false), &payload) == exact, "{path}: the echo differs");
            // One byte more: 1009, though it is far smaller on the wire.
            let packed = compress(&mut Compress::new(Level::default(), false), &over);
            let (mut s, _) = upgraded_raw_with(addr, path, OFFER).await;
            s.write_all(&masked_frame(0xc2, &packed)).await.unwrap();
            let (first, payload) = read_raw_frame(&mut s).await;
            assert_eq!((first, &payload[..2]), (0x88, &1009u16.to_be_bytes()[..]), "{path}");
        }
    }

    async fn a_bomb_is_closed_with_1009_and_the_server_goes_on(rt) {
        let server = rt.start(app()).await;
        let addr = server.local_addr();
        let (mut s, _) = upgraded_raw_with(addr, "/z", OFFER).await;
        // 16 MiB of zeros in about 16 KiB; the route's limit is 1 MiB.
        let mut best = Compress::new(Level::best(), false);
        let bomb = compress(&mut best, &vec![0u8; 16 << 20]);
        assert!(bomb.len() < 20 << 10, "{}", bomb.len());
        s.write_all(&masked_frame(0xc2, &bomb)).await.unwrap();
        let (first, payload) = read_raw_frame(&mut s).await;
        assert_eq!((first, &payload[..2]), (0x88, &1009u16.to_be_bytes()[..]));
        // Everyone else is served as before.
        let (mut other, _) = upgraded_raw_with(addr, "/z", OFFER).await;
        other.write_all(&masked_frame(0x81, b"still here")).await.unwrap();
        assert_eq!(read_raw_frame(&mut other).await, (0x81, b"still here".to_vec()));
    }
}

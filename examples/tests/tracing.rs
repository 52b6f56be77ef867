//! With the `tracing` feature, every connection has one span (id, remote
//! address, route, subprotocol) and each of its events is recorded in it:
//! the upgrade accepted or refused with its status, errors, the drain, and
//! the close with its code and who started it.

mod common;

use std::net::{SocketAddr, TcpStream};

use async_io::Async;
use async_tungstenite::tungstenite::Message as Frame;
use async_tungstenite::tungstenite::client::IntoClientRequest;
use common::trace::{SpanRecord, capture};
use common::*;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use wsway::{App, on_message};

fn app() -> App {
    let mut app = App::new();
    app.ws(
        "/chat/:room",
        on_message(|ws, msg| {
            ws.send(msg);
        }),
    )
    .protocols(["chat.v1"]);
    app
}

/// The one connection span whose remote address is `client`.
async fn span_of(client: SocketAddr, until: &str) -> SpanRecord {
    let captured = capture();
    let remote = client.to_string();
    let mut found = None;
    eventually(&format!("the span of {remote} with {until:?}"), || {
        let spans = captured.spans_where("remote", &remote);
        assert!(spans.len() <= 1, "one span per connection: {spans:?}");
        found = spans.into_iter().find(|s| {
            s.events
                .iter()
                .any(|e| e.get("message").is_some_and(|m| m == until))
        });
        found.is_some()
    })
    .await;
    found.unwrap()
}

/// The fields of the span's event with this message.
fn event<'a>(span: &'a SpanRecord, message: &str) -> &'a common::trace::Fields {
    span.events
        .iter()
        .find(|e| e.get("message").is_some_and(|m| m == message))
        .unwrap_or_else(|| panic!("no {message:?} event in {span:#?}"))
}

fn local_addr(ws: &Client) -> SocketAddr {
    ws.get_ref().get_ref().local_addr().unwrap()
}

runtime_tests! {
    async fn a_connection_is_one_span_holding_its_events(rt) {
        let _ = capture();
        let server = rt.start(app()).await;
        let addr = server.local_addr();

        // Accepted, with a subprotocol, closed by the client.
        let mut req = format!("ws://{addr}/chat/lobby?token=x").into_client_request().unwrap();
        req.headers_mut().insert("sec-websocket-protocol", "chat.v1".parse().unwrap());
        let mut ws = connect_request(addr, req).await;
        let client = local_addr(&ws);
        send_text(&mut ws, "hi").await;
        next_message(&mut ws).await;
        ws.close(None).await.unwrap();
        finish_close(&mut ws).await;
        let span = span_of(client, "closed").await;
        assert_eq!(span.name, "wsway.connection");
        assert_eq!(span.fields["route"], "/chat/{room}");
        assert_eq!(span.fields["protocol"], "chat.v1");
        assert!(span.fields["id"].parse::<u64>().is_ok(), "{span:#?}");
        assert_eq!(event(&span, "upgrade accepted")["status"], "101");
        let closed = event(&span, "closed");
        assert_eq!((closed["code"].as_str(), closed["by"].as_str()), ("1005", "client"));

        // Refused, with its status, in the same kind of span.
        let mut tcp = Async::<TcpStream>::connect(addr).await.unwrap();
        let client = tcp.get_ref().local_addr().unwrap();
        let request = upgrade_request("/chat/lobby", "").replace("Version: 13", "Version: 8");
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut head = [0u8; 12];
        within(WAIT, "the answer", tcp.read_exact(&mut head)).await.unwrap();
        let span = span_of(client, "upgrade refused").await;
        assert_eq!(event(&span, "upgrade refused")["status"], "426");
        assert_eq!(span.fields["route"], "/chat/{room}");
        assert!(!span.fields.contains_key("id"), "a refused upgrade has no connection id");
        drop(tcp);

        // An error: the server closes with 1007.
        let mut ws = connect(addr, "/chat/lobby").await;
        let client = local_addr(&ws);
        use async_tungstenite::tungstenite::protocol::frame::{Frame as RawFrame, coding::{Data, OpCode}};
        let bad = RawFrame::message(vec![0xff, 0xfe], OpCode::Data(Data::Text), true);
        ws.send(Frame::Frame(bad)).await.unwrap();
        assert_eq!(expect_close(&mut ws).await.0, 1007);
        finish_close(&mut ws).await;
        // The server reads until the client hangs up.
        drop(ws);
        let span = span_of(client, "closed").await;
        assert!(event(&span, "connection error")["error"].contains("UTF-8"), "{span:#?}");
        let closed = event(&span, "closed");
        assert_eq!((closed["code"].as_str(), closed["by"].as_str()), ("1007", "server"));

        // The drain.
        let mut ws = connect(addr, "/chat/lobby").await;
        let client = local_addr(&ws);
        eventually("open", || server.connections() == 1).await;
        server.shutdown();
        assert_eq!(expect_close(&mut ws).await.0, 1001);
        finish_close(&mut ws).await;
        let span = span_of(client, "closed").await;
        assert_eq!(event(&span, "draining")["code"], "1001");
        let closed = event(&span, "closed");
        assert_eq!((closed["code"].as_str(), closed["by"].as_str()), ("1001", "server"));
        within(WAIT, "stopped", server.stopped()).await;
    }
}

//! Secrets stay out of wsway's own output: tokens in query strings,
//! `Authorization` headers and `Sec-WebSocket-Protocol` never appear in
//! what a server process prints, whatever happens to the request, bearer
//! tokens of the chat example's sessions included.

mod common;

use std::time::Duration;

use async_tungstenite::tungstenite::client::IntoClientRequest;
use common::*;

const SECRET: &str = "s3cr3t-T0KEN-value";

runtime_tests! {
    async fn secrets_never_reach_the_output(rt) {
        let mut example = Example::spawn(env!("CARGO_BIN_EXE_echo"), rt);
        let addr = example.addr;
        let creds = format!("Authorization: Bearer {SECRET}\\r\\nSec-WebSocket-Protocol: {SECRET}\\r\\n");
        let path = format!("/echo?token={SECRET}");
        // Every outcome: accepted, and refused for each reason we refuse.
        let requests = [
            upgrade_request(&path, &creds),
            upgrade_request(&path, &creds).replace("Version: 13", "Version: 8"),
            upgrade_request(&path, &creds).replacen("GET", "POST", 1),
            upgrade_request(&path, &format!("{creds}Origin: https://{SECRET}.example\\r\\n")),
            upgrade_request(&path, &format!("{creds}Content-Length: 3\\r\\n")),
            upgrade_request(&format!("/nowhere?token={SECRET}"), &creds),
            format!("GET /echo?token={SECRET} HTTP/1.1\\r\\nHost: x\\r\\n{creds}\\r\\n"),
        ];
        for r in &requests {
            let _ = raw(addr, r).await;
        }
        // An accepted connection that then breaks the protocol (bad UTF-8).
        let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
        req.headers_mut().insert("authorization", format!("Bearer {SECRET}").parse().unwrap());
        let mut ws = connect_request(addr, req).await;
        use async_tungstenite::tungstenite::protocol::frame::{Frame as RawFrame, coding::{Data, OpCode}};
        let bad = RawFrame::message(vec![0xff, 0xfe], OpCode::Data(Data::Text), true);
        let _ = ws.send(async_tungstenite::tungstenite::Message::Frame(bad)).await;
        let _ = expect_close(&mut ws).await;
        finish_close(&mut ws).await;
        drop(ws);

        example.signal("-TERM");
        assert!(example.wait_exit(Duration::from_secs(9)).success());
        let output = example.output();
        assert!(!output.contains(SECRET), "a secret reached the output:\\n{output}");
        assert!(output.contains("listening on"), "the output was captured: {output:?}");
    }

    async fn chat_tokens_never_reach_the_output(rt) {
        let mut example = Example::spawn(env!("CARGO_BIN_EXE_chat"), rt);
        let addr = example.addr;
        // A forged token, from every source a client could put it in.
        let forged = format!("Sec-WebSocket-Protocol: wsway.v1, bearer.{SECRET}\r\nAuthorization: Bearer {SECRET}\r\n");
        let r = raw(addr, &upgrade_request(&format!("/chat/lobby?token={SECRET}"), &forged)).await;
        assert_eq!(status_of(&r), 401);
        // A real one, through a session that sends bad calls too.
        let token = chat_login(addr, "ann").await;
        let mut ws = chat_enter(addr, "lobby", "ann", &token).await;
        for bad in ["not json", r#"{"event":"chat:send","data":7,"id":1}"#, r#"{"event":"nope","id":2}"#] {
            send_text(&mut ws, bad).await;
            let _ = next_json(&mut ws).await;
        }
        drop(ws);

        example.signal("-TERM");
        assert!(example.wait_exit(Duration::from_secs(9)).success());
        let output = example.output();
        assert!(!output.contains(SECRET), "a forged token reached the output:\n{output}");
        assert!(!output.contains(&token), "a session token reached the output:\n{output}");
        assert!(output.contains("listening on"), "the output was captured: {output:?}");
    }
}

//! wsway mounted in an axum app: one port, one process, one shutdown.
//!
//! - axum's own routes: `GET /api/health`, and
//!   `POST /api/rooms/{room}/announce` (the body is a line of text), which
//!   publishes into the wsway room's topic, so every member on every node
//!   sees it; `GET /api/rooms/{room}/members` lists them.
//! - wsway's app, as axum's fallback service: the chat (the page at `/`,
//!   `wsway.js`, `/login`, the event route `/chat/:room`), `/echo` (for the
//!   conformance suite), `/livez` and `/readyz`.
//!
//! SIGTERM: `/readyz` answers 503 at once; after the pre-drain delay the
//! sockets close in batches with 1001 and the reconnect hint, every queued
//! message delivered; axum stops accepting when the drain begins
//! ([`ServerHandle::draining`](wsway::ServerHandle::draining)); the process
//! exits 0 once wsway has stopped.

use std::net::SocketAddr;
use std::process::ExitCode;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use wsway::{App, Compression, Server, Topics, on_message};

/// The wsway app: the chat, plus an echo route.
pub fn wsway_app() -> App {
    let mut app = examples::chat::app();
    app.ws(
        "/echo",
        on_message(|ws, msg| {
            ws.send(msg);
        }),
    )
    .compression(Compression::dedicated());
    app.livez("/livez").readyz("/readyz");
    app
}

/// axum's routes, with the wsway app's topics as their state, and the
/// wsway app mounted behind them.
pub fn router(topics: Topics, ws: wsway::AppService) -> Router {
    Router::new()
        .route("/api/health", get(|| async { "ok" }))
        .route("/api/rooms/{room}/announce", post(announce))
        .route("/api/rooms/{room}/members", get(members))
        .with_state(topics)
        .fallback_service(ws)
}

/// Publishes `line` into the room, as the chat's own messages go out.
async fn announce(
    State(topics): State<Topics>,
    Path(room): Path<String>,
    line: String,
) -> Result<Json<serde_json::Value>, (StatusCode, String)> {
    let data = serde_json::json!({ "name": "announcer", "text": line });
    let published = topics
        .publish_event(&format!("room:{room}"), "chat:message", &data)
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(
        serde_json::json!({ "delivered": published.delivered }),
    ))
}

/// Who is in the room, on every node.
async fn members(
    State(topics): State<Topics>,
    Path(room): Path<String>,
) -> Result<Json<Vec<wsway::Member>>, (StatusCode, String)> {
    topics
        .presence(&format!("room:{room}"))
        .await
        .map(Json)
        .map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, e.to_string()))
}

/// Serves until SIGTERM or SIGINT, then drains and returns.
pub async fn serve(args: examples::Args) -> std::io::Result<()> {
    let app = wsway_app();
    let topics = app.topics();
    let server = Server::new(app).pre_drain_delay(args.pre_drain_delay);
    let (ws, handle) = server.into_service(wsway_tokio::runtime())?;
    let ws = ws.remote_addr(|v| v.get::<ConnectInfo<SocketAddr>>().map(|c| c.0));
    let listener = match wsway::inherited_listener()? {
        Some(listener) => tokio::net::TcpListener::from_std(listener)?,
        None => tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?,
    };
    println!("listening on {}", listener.local_addr()?);
    let service = router(topics, ws).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(handle.clone().draining())
        .await?;
    handle.stopped().await;
    Ok(())
}

/// The `main`: the examples' command line (`--port`, `--pre-drain-delay`),
/// on tokio, axum's runtime.
pub fn main() -> ExitCode {
    let args = match examples::Args::parse(3000) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .and_then(|rt| rt.block_on(serve(args)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

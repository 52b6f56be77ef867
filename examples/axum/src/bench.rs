//! The load kit's server mounted in axum, to measure what mounting costs:
//! `axum-bench [PORT]` (or `$PORT`), the same app as `bench-server`
//! (`/echo`, `/room/:name`) as axum's fallback service, on tokio.

use std::net::SocketAddr;

fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("PORT").ok())
        .and_then(|p| p.parse().ok())
        .unwrap_or(9002);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
        let (service, handle) = wsway::Server::new(examples::bench::app())
            .mounted_at(listener.local_addr()?)
            .into_service(wsway_tokio::runtime())?;
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        println!("listening on {}", listener.local_addr()?);
        let app = axum::Router::new()
            .fallback_service(service)
            .into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(listener, app)
            .with_graceful_shutdown(handle.clone().draining())
            .await?;
        handle.stopped().await;
        Ok(())
    })
}

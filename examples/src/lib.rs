//! The examples' applications, and what every example binary shares:
//! `--port` / `--runtime` / `--redis` (and `--presence-heartbeat`) /
//! `--tls-cert` and `--tls-key` parsing, `/metrics`, the admin page and
//! the server API (keys from the environment), and running an [`App`]
//! on the chosen runtime until a graceful shutdown.

pub mod bench;
pub mod chat;
pub mod echo;
pub mod served;
pub mod shell;

use std::process::ExitCode;

use wsway::{App, Server};

/// Command-line options common to the examples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// `--port N`, else `$PORT`, else the example's default.
    pub port: u16,
    /// `--runtime tokio|async-std|smol` (default tokio).
    pub runtime: String,
    /// `--redis URL`, else `$REDIS_URL`: share topics with every process
    /// using the same Redis (none by default: one process).
    pub redis: Option<String>,
    /// `--presence-heartbeat MS`: with `--redis`, how often this process
    /// renews its presence entries (default 5 s: a crashed process's
    /// members disappear within three heartbeats).
    pub presence_heartbeat: Option<std::time::Duration>,
    /// `--pre-drain-delay SECONDS`: after SIGTERM, keep serving this long
    /// (with `/readyz` answering 503) before the drain starts. Default 0.
    pub pre_drain_delay: std::time::Duration,
    /// `--history N`: every topic keeps its last N messages, so clients
    /// resume after a reconnect (for measuring its cost; the chat's rooms
    /// keep history anyway).
    pub history: Option<usize>,
    /// `--tls-cert PATH --tls-key PATH`: serve wss:// (and https://) with
    /// this PEM certificate chain and key; SIGHUP re-reads them.
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// `--no-metrics`: install no recorder and serve no `/metrics` (for
    /// measuring what recording costs).
    pub no_metrics: bool,
    /// `--http2`: speak HTTP/2 too (h2c, and ALPN `h2` with TLS), with
    /// WebSockets as extended CONNECT streams (RFC 8441).
    pub http2: bool,
}

impl Args {
    /// `/metrics` on `app`, unless `--no-metrics`.
    pub fn serve_metrics(&self, app: &mut App) -> std::io::Result<()> {
        operator_pages(app)?;
        if self.no_metrics {
            return Ok(());
        }
        serve_metrics(app)
    }

    /// `server` with the certificate of `--tls-cert` and `--tls-key`, if
    /// given (read now: a bad file is an error at startup), and HTTP/2 with
    /// `--http2`.
    pub fn secure(&self, server: Server) -> std::io::Result<Server> {
        let server = if self.http2 { server.http2() } else { server };
        let Some((cert, key)) = &self.tls else {
            return Ok(server);
        };
        let tls = wsway::Tls::from_pem_files(cert, key).map_err(std::io::Error::other)?;
        Ok(server.tls(tls))
    }

    /// Parses `std::env::args()`; a bare number is taken as the port.
    pub fn parse(default_port: u16) -> Result<Args, String> {
        let mut args = Self::parse_from(
            std::env::args().skip(1),
            std::env::var("PORT").ok(),
            default_port,
        )?;
        if args.redis.is_none() {
            args.redis = std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty());
        }
        Ok(args)
    }

    /// Parses the given arguments (without the program name).
    pub fn parse_from(
        args: impl IntoIterator<Item = String>,
        env_port: Option<String>,
        default_port: u16,
    ) -> Result<Args, String> {
        let port_of = |s: &str| s.parse::<u16>().map_err(|_| format!("invalid port `{s}`"));
        let mut port = match env_port.as_deref() {
            Some(p) if !p.is_empty() => port_of(p)?,
            _ => default_port,
        };
        let mut runtime = "tokio".to_owned();
        let mut redis = None;
        let mut presence_heartbeat = None;
        let mut pre_drain_delay = std::time::Duration::ZERO;
        let mut history = None;
        let (mut cert, mut key) = (None, None);
        let mut no_metrics = false;
        let mut http2 = false;
        let mut it = args.into_iter();
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "--port" => port = port_of(&it.next().ok_or("--port needs a value")?)?,
                "--runtime" => runtime = it.next().ok_or("--runtime needs a value")?,
                "--redis" => redis = Some(it.next().ok_or("--redis needs a URL")?),
                "--presence-heartbeat" => {
                    let ms = it.next().ok_or("--presence-heartbeat needs milliseconds")?;
                    let ms = ms.parse::<u64>().ok().filter(|&ms| ms > 0).ok_or_else(|| {
                        format!("invalid heartbeat `{ms}`: milliseconds, above 0")
                    })?;
                    presence_heartbeat = Some(std::time::Duration::from_millis(ms));
                }
                "-h" | "--help" => {
                    return Err("options: [--port N | N] [--runtime tokio|async-std|smol] \
                         [--redis URL [--presence-heartbeat MS]] [--pre-drain-delay SECONDS] \
                         [--history N] [--tls-cert PEM --tls-key PEM] [--http2] [--no-metrics]"
                        .into());
                }
                "--pre-drain-delay" => {
                    let secs = it.next().ok_or("--pre-drain-delay needs seconds")?;
                    pre_drain_delay = secs
                        .parse::<f64>()
                        .ok()
                        .and_then(|s| std::time::Duration::try_from_secs_f64(s).ok())
                        .ok_or_else(|| format!("invalid delay `{secs}`: seconds, 0 or more"))?;
                }
                "--history" => {
                    let n = it.next().ok_or("--history needs a number of messages")?;
                    history = Some(
                        n.parse::<usize>()
                            .ok()
                            .filter(|&n| n > 0)
                            .ok_or_else(|| format!("invalid history `{n}`: messages, above 0"))?,
                    );
                }
                "--no-metrics" => no_metrics = true,
                "--http2" => http2 = true,
                "--tls-cert" => cert = Some(it.next().ok_or("--tls-cert needs a PEM file")?),
                "--tls-key" => key = Some(it.next().ok_or("--tls-key needs a PEM file")?),
                other if other.parse::<u16>().is_ok() => port = port_of(other)?,
                other => return Err(format!("unknown argument `{other}`")),
            }
        }
        let tls = match (cert, key) {
            (Some(cert), Some(key)) => Some((cert.into(), key.into())),
            (None, None) => None,
            _ => return Err("--tls-cert and --tls-key go together".into()),
        };
        Ok(Args {
            tls,
            no_metrics,
            http2,
            port,
            runtime,
            redis,
            presence_heartbeat,
            pre_drain_delay,
            history,
        })
    }
}

/// Serves `app` on 127.0.0.1 with the runtime and port from the command line
/// (or on the socket systemd socket activation passed, when `LISTEN_FDS`
/// is set),
/// prints `listening on 127.0.0.1:PORT` once it accepts, and returns after a
/// graceful shutdown (SIGTERM or SIGINT).
pub fn run(app: App, default_port: u16) -> ExitCode {
    let args = match Args::parse(default_port) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let mut app = app;
    if let Err(e) = args.serve_metrics(&mut app) {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    // A socket passed by systemd (or a restart harness) wins over --port:
    // it stays open across restarts, so no connect is refused.
    let bind = match wsway::inherited_listener() {
        Ok(Some(listener)) => Bind::Socket(listener),
        Ok(None) => Bind::Address(format!("127.0.0.1:{}", args.port)),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match args.runtime.as_str() {
        "tokio" => run_tokio(app, &args, bind),
        "smol" => smol::block_on(serve_until_stopped(app, &args, |server| async move {
            match bind {
                Bind::Address(addr) => wsway_smol::start(server, &*addr).await,
                Bind::Socket(listener) => wsway_smol::start_on(server, listener),
            }
        })),
        "async-std" => {
            async_std::task::block_on(serve_until_stopped(app, &args, |server| async move {
                match bind {
                    Bind::Address(addr) => wsway_async_std::start(server, &*addr).await,
                    Bind::Socket(listener) => wsway_async_std::start_on(server, listener),
                }
            }))
        }
        other => Err(std::io::Error::other(format!(
            "unknown runtime `{other}`: use tokio, async-std or smol"
        ))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What a server of the examples has beyond its app, for a `main` that
/// calls an adapter's `run`: `/metrics`, and wss:// when the command line
/// has `--tls-cert PATH --tls-key PATH`.
pub fn operated(mut app: App) -> std::io::Result<Server> {
    let args = Args::parse(0).map_err(std::io::Error::other)?;
    args.serve_metrics(&mut app)?;
    args.secure(Server::new(app))
}

/// Installs the process' Prometheus recorder and serves it at
/// `GET /metrics`: wsway's metrics (and anything else recorded in this
/// process) in Prometheus' text format. Called before the server starts:
/// wsway registers its counters with the recorder it finds then.
pub fn serve_metrics(app: &mut App) -> std::io::Result<()> {
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| std::io::Error::other(format!("metrics: {e}")))?;
    metrics_route(app, metrics);
    Ok(())
}

/// The admin page at `/admin` when `$WSWAY_ADMIN_KEY` is set, and the
/// server API at `/api` when `$WSWAY_API_KEY` is (keys come from the
/// environment: a command line shows in `ps`).
pub fn operator_pages(app: &mut App) -> std::io::Result<()> {
    let key = |var: &str| -> std::io::Result<Option<wsway::ApiKey>> {
        match std::env::var(var) {
            Ok(key) if !key.is_empty() => wsway::ApiKey::new(key)
                .map(Some)
                .map_err(|e| std::io::Error::other(format!("${var}: {e}"))),
            _ => Ok(None),
        }
    };
    if let Some(key) = key("WSWAY_ADMIN_KEY")? {
        app.admin("/admin", key);
    }
    if let Some(key) = key("WSWAY_API_KEY")? {
        app.server_api("/api", key);
    }
    Ok(())
}

/// `GET /metrics` rendering `metrics` (a recorder installed elsewhere).
pub fn metrics_route(app: &mut App, metrics: metrics_exporter_prometheus::PrometheusHandle) {
    app.get("/metrics", move |_req| {
        // Upkeep drains the histograms' buckets; scrapes are its natural pace.
        metrics.run_upkeep();
        let mut res = wsway::text(wsway::StatusCode::OK, metrics.render());
        res.headers_mut().insert(
            "content-type",
            wsway::http::HeaderValue::from_static("text/plain; version=0.0.4"),
        );
        std::future::ready(res)
    });
}

/// Where to serve: an address to bind, or a socket already listening.
enum Bind {
    Address(String),
    Socket(std::net::TcpListener),
}

fn run_tokio(app: App, args: &Args, bind: Bind) -> std::io::Result<()> {
    // The multi-thread builder honours TOKIO_WORKER_THREADS.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(serve_until_stopped(app, args, |server| async move {
        match bind {
            Bind::Address(addr) => wsway_tokio::start(server, &*addr).await,
            Bind::Socket(listener) => wsway_tokio::start_on(server, listener),
        }
    }))
}

/// Connects to Redis if asked, starts the server, announces it, and waits
/// for it to stop.
async fn serve_until_stopped<F, Fut>(mut app: App, args: &Args, start: F) -> std::io::Result<()>
where
    F: FnOnce(Server) -> Fut,
    Fut: std::future::Future<Output = std::io::Result<wsway::ServerHandle>>,
{
    if let Some(url) = &args.redis {
        let mut redis = wsway_redis::Redis::builder(url);
        if let Some(beat) = args.presence_heartbeat {
            redis = redis.presence_heartbeat(beat);
        }
        let backplane = redis.connect().await.map_err(std::io::Error::other)?;
        app.backplane(backplane);
        println!("sharing topics through Redis");
    }
    // Probes for a process manager or a load balancer: /readyz turns 503
    // as soon as SIGTERM arrives.
    app.livez("/livez").readyz("/readyz");
    if let Some(n) = args.history {
        app.history("*", wsway::Retention::messages(n));
    }
    let server = args.secure(Server::new(app).pre_drain_delay(args.pre_drain_delay))?;
    let handle = start(server).await?;
    println!("listening on {}", handle.local_addr());
    handle.stopped().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str], env: Option<&str>) -> Result<Args, String> {
        Args::parse_from(
            args.iter().map(|s| s.to_string()),
            env.map(String::from),
            3000,
        )
    }

    #[test]
    fn tls_files_come_in_pairs() {
        let both = parse(&["--tls-cert", "c.pem", "--tls-key", "k.pem"], None).unwrap();
        assert_eq!(both.tls, Some(("c.pem".into(), "k.pem".into())));
        assert_eq!(parse(&[], None).unwrap().tls, None);
        assert!(
            parse(&["--tls-cert", "c.pem"], None)
                .unwrap_err()
                .contains("together")
        );
        assert!(parse(&["--tls-key"], None).is_err());
        assert!(parse(&["--no-metrics"], None).unwrap().no_metrics);
    }

    #[test]
    fn port_sources_in_order() {
        assert_eq!(parse(&[], None).unwrap().port, 3000);
        assert_eq!(parse(&[], Some("4000")).unwrap().port, 4000);
        assert_eq!(parse(&["--port", "5000"], Some("4000")).unwrap().port, 5000);
        assert_eq!(parse(&["6000"], None).unwrap().port, 6000);
        assert!(parse(&["--port", "x"], None).is_err());
        assert!(parse(&["--bogus"], None).is_err());
        assert_eq!(parse(&["--runtime", "smol"], None).unwrap().runtime, "smol");
        assert_eq!(parse(&[], None).unwrap().redis, None);
        assert_eq!(
            parse(&["--redis", "redis://127.0.0.1:6379"], None)
                .unwrap()
                .redis
                .as_deref(),
            Some("redis://127.0.0.1:6379")
        );
        assert!(parse(&["--redis"], None).is_err());
        assert_eq!(
            parse(&["--presence-heartbeat", "250"], None)
                .unwrap()
                .presence_heartbeat,
            Some(std::time::Duration::from_millis(250))
        );
        assert!(parse(&["--presence-heartbeat", "0"], None).is_err());
        assert_eq!(
            parse(&["--pre-drain-delay", "1.5"], None)
                .unwrap()
                .pre_drain_delay,
            std::time::Duration::from_millis(1500)
        );
        assert!(parse(&["--pre-drain-delay", "-1"], None).is_err());
        assert_eq!(
            parse(&["--history", "100"], None).unwrap().history,
            Some(100)
        );
        assert!(parse(&["--history", "0"], None).is_err());
    }
}

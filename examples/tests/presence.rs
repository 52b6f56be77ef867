//! Presence as a connection sees it, on every backplane: tracked in
//! `open`, a connection is in the list (and the count) that `open` reads
//! next; gone in `close`, it is in neither there. In process that is one
//! table. With Redis (two nodes on one `redis-server`, or on a Redis
//! Cluster) a node answers for itself from its own table, so its queries
//! see its own changes before they are written; 50 connections alternate
//! between the nodes. Each
//! finds its own entry by [`Ws::member_id`](wsway::Ws::member_id).

mod common;

use common::shared_redis::{Kind, SharedRedis};
use common::*;
use wsway::{Accept, App, CloseCode, Handler, Request, Response, ServerHandle, Ws};

/// Where presence is kept.
#[derive(Clone, Copy, Debug)]
enum Backplane {
    InProcess,
    Redis(Kind),
}

/// `/p/:name`: tracks itself in `room` on open and reports what `open`
/// and `close` read of the room's presence.
struct Probe(Log);

impl Handler for Probe {
    type Data = String;

    async fn before_upgrade(&self, req: &Request) -> Result<Accept<String>, Response> {
        Ok(Accept::new(req.params()?))
    }

    async fn open(&self, ws: &mut Ws<String>) {
        let name = ws.data.clone();
        ws.track("room", &serde_json::json!({ "name": name }))
            .expect("JSON metadata");
        let seen = read(ws).await;
        self.0.push(format!("open {name}: {seen}"));
    }

    async fn close(&self, ws: &mut Ws<String>, _code: CloseCode, _reason: &str) {
        let seen = read(ws).await;
        self.0.push(format!("close {}: {seen}", ws.data));
    }
}

/// The names in the room's presence, and its count.
async fn read(ws: &Ws<String>) -> String {
    let topics = ws.topics();
    let members = match topics.presence("room").await {
        Ok(m) => m,
        Err(e) => return format!("error {e}"),
    };
    let mut names: Vec<String> = members
        .iter()
        .map(|m| {
            m.meta::<serde_json::Value>().unwrap()["name"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    names.sort();
    let count = topics
        .presence_count("room")
        .await
        .map_err(|e| e.to_string());
    // Its own entry, found by the id it is listed under.
    let me = ws.member_id();
    let listed = members.iter().any(|m| m.id() == me);
    format!("{} (count {count:?}, me listed {listed})", names.join(","))
}

fn app(log: &Log) -> App {
    let mut app = App::new();
    app.ws("/p/:name", Probe(log.clone()));
    app
}

/// Two nodes (one node twice, in process) and the Redis they share.
async fn nodes(
    rt: Runtime,
    backplane: Backplane,
    log: &Log,
) -> (ServerHandle, ServerHandle, Option<SharedRedis>) {
    match backplane {
        Backplane::InProcess => {
            let a = rt.start(app(log)).await;
            (a.clone(), a, None)
        }
        Backplane::Redis(kind) => {
            let redis = SharedRedis::start(kind);
            let mut nodes = Vec::new();
            for _ in 0..2 {
                let mut app = app(log);
                app.backplane(redis.builder().connect().await.expect("connect"));
                nodes.push(rt.start(app).await);
            }
            let b = nodes.pop().unwrap();
            (nodes.pop().unwrap(), b, Some(redis))
        }
    }
}

async fn read_your_writes(rt: Runtime, backplane: Backplane) {
    let log = Log::default();
    let (a, b, _redis) = nodes(rt, backplane, &log).await;
    // One member stays throughout, on node B, written before the runs.
    let _anchor = connect(b.local_addr(), "/p/anchor").await;
    log.wait_for("open anchor").await;
    let topics = a.topics();
    let mut seen_from_a = 0;
    for _ in 0..500 {
        seen_from_a = topics.presence_count("room").await.unwrap_or(0);
        if seen_from_a == 1 {
            break;
        }
        rt.sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(seen_from_a, 1, "node A never saw the anchor");
    for i in 0..50 {
        let node = if i % 2 == 0 { &a } else { &b };
        let name = format!("m{i:02}");
        let mut ws = connect(node.local_addr(), &format!("/p/{name}")).await;
        let opened = log.wait_for(&format!("open {name}:")).await;
        assert_eq!(
            opened,
            format!("open {name}: anchor,{name} (count Ok(2), me listed true)"),
            "run {i} ({backplane:?})"
        );
        ws.close(None).await.expect("close");
        finish_close(&mut ws).await;
        let closed = log.wait_for(&format!("close {name}:")).await;
        assert_eq!(
            closed,
            format!("close {name}: anchor (count Ok(1), me listed false)"),
            "run {i} ({backplane:?})"
        );
    }
}

runtime_tests! {
    async fn a_nodes_queries_see_its_own_presence_changes_in_process(rt) {
        read_your_writes(rt, Backplane::InProcess).await;
    }

    #[ignore = "needs redis-server; .ci/run installs it and runs this"]
    async fn a_nodes_queries_see_its_own_presence_changes_on_redis(rt) {
        read_your_writes(rt, Backplane::Redis(Kind::Single)).await;
    }

    #[ignore = "needs redis-server and redis-cli; .ci/run installs them and runs this"]
    async fn a_nodes_queries_see_its_own_presence_changes_on_a_cluster(rt) {
        read_your_writes(rt, Backplane::Redis(Kind::Cluster)).await;
    }
}

//! What the page is sent each refresh: every node's figures, rates from
//! the difference between two of its reports, the busiest topics, closes
//! by code, and the presence of the topic the page asked for.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::topics::census::{self, NodeReport};
use crate::topics::pubsub::Topics;

/// How many topics the page lists.
const TOPICS: usize = 10;

/// One node's last counters, and the rates they gave.
#[derive(Default)]
struct Last {
    at_ms: u64,
    messages_in: u64,
    messages_out: u64,
    published: HashMap<String, u64>,
    in_rate: f64,
    out_rate: f64,
    topic_rates: HashMap<String, f64>,
}

/// Each node's last counters, by node id, across refreshes.
#[derive(Default)]
pub(super) struct Rates(HashMap<String, Last>);

impl Rates {
    /// Takes `report`'s counters in: a report newer than the last gives
    /// new rates; the same report again keeps the last ones.
    fn update(&mut self, report: &NodeReport) -> &Last {
        let stats = &report.stats;
        let last = self.0.entry(report.node.clone()).or_default();
        if stats.at_ms > last.at_ms {
            let first = last.at_ms == 0;
            let secs = (stats.at_ms - last.at_ms) as f64 / 1000.0;
            let per_s = |now: u64, then: u64| now.saturating_sub(then) as f64 / secs;
            let published: HashMap<String, u64> = stats.published.iter().cloned().collect();
            if !first {
                last.in_rate = per_s(stats.messages_in, last.messages_in);
                last.out_rate = per_s(stats.messages_out, last.messages_out);
                last.topic_rates = (published.iter())
                    .map(|(t, n)| (t.clone(), per_s(*n, *last.published.get(t).unwrap_or(&0))))
                    .collect();
            }
            last.at_ms = stats.at_ms;
            last.messages_in = stats.messages_in;
            last.messages_out = stats.messages_out;
            last.published = published;
        }
        last
    }
}

#[derive(Serialize)]
struct NodeView<'a> {
    node: &'a str,
    connections: usize,
    in_per_s: f64,
    out_per_s: f64,
    draining: bool,
    watched: bool,
    /// How old the node's report is, by this node's clock.
    age_ms: u64,
    backplane: Option<&'a crate::BackplaneHealth>,
}

#[derive(Serialize)]
struct TopicView {
    topic: String,
    subscribers: usize,
    per_s: f64,
}

/// The page's view now: `Err` when the store did not answer.
pub(super) async fn take(
    topics: &Topics,
    rates: &mut Rates,
    presence: Option<&str>,
) -> serde_json::Value {
    let reports = match topics.reports().await {
        Ok(reports) => reports,
        Err(e) => return serde_json::json!({ "error": e.to_string() }),
    };
    let now_ms = reports.first().map_or(0, |own| own.stats.at_ms);
    let mut nodes = Vec::with_capacity(reports.len());
    let mut topic_rates: HashMap<String, f64> = HashMap::new();
    let mut closes: BTreeMap<u16, u64> = BTreeMap::new();
    let (mut connections, mut in_rate, mut out_rate) = (0, 0.0, 0.0);
    for report in &reports {
        let last = rates.update(report);
        for (topic, rate) in &last.topic_rates {
            *topic_rates.entry(topic.clone()).or_default() += rate;
        }
        for (code, n) in &report.stats.closes {
            *closes.entry(*code).or_default() += n;
        }
        connections += report.stats.connections;
        in_rate += last.in_rate;
        out_rate += last.out_rate;
        nodes.push(NodeView {
            node: &report.node,
            connections: report.stats.connections,
            in_per_s: last.in_rate,
            out_per_s: last.out_rate,
            draining: report.stats.draining,
            watched: report.stats.watched,
            age_ms: now_ms.saturating_sub(report.stats.at_ms),
            backplane: report.stats.backplane.as_ref(),
        });
    }
    let busiest = census::add_up(&reports, TOPICS).topics;
    let topic_views: Vec<TopicView> = (busiest.into_iter())
        .map(|t| TopicView {
            per_s: topic_rates.get(&t.topic).copied().unwrap_or(0.0),
            topic: t.topic,
            subscribers: t.subscribers,
        })
        .collect();
    let presence = match presence {
        None => serde_json::Value::Null,
        Some(topic) => match topics.presence(topic).await {
            Ok(members) => serde_json::json!({ "topic": topic, "members": members }),
            Err(e) => serde_json::json!({ "topic": topic, "error": e.to_string() }),
        },
    };
    serde_json::json!({
        "at_ms": now_ms,
        "total": { "connections": connections, "in_per_s": in_rate, "out_per_s": out_rate },
        "nodes": nodes,
        "topics": topic_views,
        "closes": closes,
        "presence": presence,
    })
}

//! The census: which topics have subscribers, and how many, on every node.
//! Each node reports its own ([`LocalTopics::report`]); a multi-node
//! backplane gathers the others' ([`Backplane::nodes`](crate::Backplane::nodes)),
//! and [`Topics::topic_counts`](crate::Topics::topic_counts) adds them up.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// How many of its topics a node reports: its busiest. A node with more
/// says so ([`NodeReport::topics_total`]), and a sum that may miss some
/// is marked incomplete ([`TopicCounts::complete`]).
pub const REPORTED_TOPICS: usize = 1000;

/// One node's topics, as it last reported them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NodeReport {
    /// The node's id: the prefix of its connections'
    /// [`Member::id`](crate::Member::id)s with `wsway-redis`, `"local"` in
    /// process.
    pub node: String,
    /// Its busiest topics (at most [`REPORTED_TOPICS`]), most subscribers
    /// first.
    pub topics: Vec<TopicCount>,
    /// How many topics it has subscribers in, reported or not.
    pub topics_total: usize,
    /// What the admin page shows of it.
    #[serde(default)]
    pub stats: NodeStats,
}

/// A node's figures for the admin page ([`App::admin`](crate::App::admin)).
/// The counters count only while a page watches (any node's).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct NodeStats {
    /// When the report was made: ms since the Unix epoch, the node's clock.
    pub at_ms: u64,
    /// Open WebSockets.
    pub connections: usize,
    /// True once the node's server began draining.
    pub draining: bool,
    /// True while the node counts (a page watches it or another node).
    pub watched: bool,
    /// Data messages received since the process started, while watched.
    pub messages_in: u64,
    /// Data messages sent since the process started, while watched.
    pub messages_out: u64,
    /// Closes by code, while watched.
    pub closes: std::collections::BTreeMap<u16, u64>,
    /// Publishes made on this node by topic, while watched: its busiest.
    pub published: Vec<(String, u64)>,
    /// The backplane's link to its store, when it has one.
    pub backplane: Option<BackplaneHealth>,
}

/// How a multi-node backplane's link to its store stands, as a node
/// reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct BackplaneHealth {
    /// Connected to the store and listening to every local topic.
    pub connected: bool,
    /// Bytes of publishes waiting to be forwarded.
    pub queued_bytes: u64,
    /// Publishes that never reached the store since the start.
    pub dropped: u64,
}

impl BackplaneHealth {
    /// A report of the link.
    pub fn new(connected: bool, queued_bytes: u64, dropped: u64) -> BackplaneHealth {
        BackplaneHealth {
            connected,
            queued_bytes,
            dropped,
        }
    }
}

impl NodeReport {
    /// A report of `topics` (a topic and its subscribers on the node, in
    /// any order) by `node`: the busiest [`REPORTED_TOPICS`] of them.
    pub fn new(node: impl Into<String>, mut topics: Vec<TopicCount>) -> NodeReport {
        let topics_total = topics.len();
        topics.sort_unstable_by(|a, b| {
            (b.subscribers.cmp(&a.subscribers)).then_with(|| a.topic.cmp(&b.topic))
        });
        topics.truncate(REPORTED_TOPICS);
        NodeReport {
            node: node.into(),
            topics,
            topics_total,
            stats: NodeStats::default(),
        }
    }

    /// This report with its backplane's `health`.
    pub fn with_backplane(mut self, health: BackplaneHealth) -> NodeReport {
        self.stats.backplane = Some(health);
        self
    }

    /// This report with another node id.
    pub fn with_node(mut self, node: impl Into<String>) -> NodeReport {
        self.node = node.into();
        self
    }
}

/// A topic and its subscribers (on one node, or summed over nodes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicCount {
    /// The topic's name.
    pub topic: String,
    /// Its subscribers.
    pub subscribers: usize,
}

/// Every node's topics added up: the answer of
/// [`Topics::topic_counts`](crate::Topics::topic_counts).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TopicCounts {
    /// The busiest topics over every node, most subscribers first, at most
    /// the number asked for.
    pub topics: Vec<TopicCount>,
    /// Nodes that reported.
    pub nodes: usize,
    /// False when a node has more topics than it reports: a topic outside
    /// its busiest [`REPORTED_TOPICS`] counts there as none.
    pub complete: bool,
}

/// Adds up `reports`, keeping the `most` busiest topics.
pub(crate) fn add_up(reports: &[NodeReport], most: usize) -> TopicCounts {
    let mut sums: HashMap<&str, usize> = HashMap::new();
    for report in reports {
        for t in &report.topics {
            *sums.entry(&t.topic).or_default() += t.subscribers;
        }
    }
    let mut topics: Vec<TopicCount> = (sums.into_iter())
        .map(|(topic, subscribers)| TopicCount {
            topic: topic.to_owned(),
            subscribers,
        })
        .collect();
    topics.sort_unstable_by(|a, b| {
        (b.subscribers.cmp(&a.subscribers)).then_with(|| a.topic.cmp(&b.topic))
    });
    topics.truncate(most);
    TopicCounts {
        topics,
        nodes: reports.len(),
        complete: reports.iter().all(|r| r.topics_total <= r.topics.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(topic: &str, subscribers: usize) -> TopicCount {
        TopicCount {
            topic: topic.into(),
            subscribers,
        }
    }

    #[test]
    fn nodes_add_up_busiest_first_and_say_when_some_were_left_out() {
        let a = NodeReport::new("a", vec![count("x", 1), count("y", 5)]);
        assert_eq!(a.topics, [count("y", 5), count("x", 1)]);
        let b = NodeReport::new("b", vec![count("x", 7), count("z", 1)]);
        let sum = add_up(&[a.clone(), b], 2);
        assert_eq!(sum.topics, [count("x", 8), count("y", 5)]);
        assert_eq!((sum.nodes, sum.complete), (2, true));

        let many = (0..REPORTED_TOPICS + 1).map(|i| count(&format!("t{i}"), 1));
        let big = NodeReport::new("c", many.collect());
        assert_eq!(big.topics.len(), REPORTED_TOPICS);
        assert_eq!(big.topics_total, REPORTED_TOPICS + 1);
        assert!(!add_up(&[a, big], 10).complete);
    }
}

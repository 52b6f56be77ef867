//! Reading a topic's history from outside any connection (the server API's
//! `/history`): what is kept after a position, from this node's ring in
//! process or from the backplane's store, and whether anything after that
//! position is no longer kept.

use crate::delivery::history::{self, HistoryError, Position};
use crate::message::Message;
use crate::topics::pubsub::Topics;

/// What a read found.
pub(crate) struct Page {
    /// The topic's last position, if it has one.
    pub(crate) last: Option<Position>,
    /// The kept messages after the position asked for, oldest first.
    pub(crate) messages: Vec<(Position, Message)>,
    /// False when messages after that position are no longer kept (trimmed,
    /// or the history started again in a new epoch): `messages` is then all
    /// that is kept.
    pub(crate) complete: bool,
}

/// Why a read has no answer.
pub(crate) enum ReadError {
    /// The topic keeps no history ([`App::history`](crate::App::history)).
    NotKept,
    /// The store did not answer.
    Store(HistoryError),
}

impl Topics {
    /// `topic`'s kept messages after `since` (all of them without).
    pub(crate) async fn read_history(
        &self,
        topic: &str,
        since: Option<Position>,
    ) -> Result<Page, ReadError> {
        let local = &self.inner.local;
        let retention = local.history.retention(topic).ok_or(ReadError::NotKept)?;
        if local.history.is_stored() {
            return self.read_stored(topic, since, retention).await;
        }
        let ring = local.history.ring(topic, retention);
        let mut ring = history::lock(&ring);
        let (kept, complete) = ring.read(since);
        let last = ring.last().filter(|p| p.offset > 0);
        let epoch = ring.epoch().unwrap_or_default();
        let messages = (kept.into_iter())
            .map(|(offset, frame)| (Position { epoch, offset }, Message::from_frame(frame)))
            .collect();
        Ok(Page {
            last,
            messages,
            complete,
        })
    }

    async fn read_stored(
        &self,
        topic: &str,
        since: Option<Position>,
        retention: crate::delivery::history::Retention,
    ) -> Result<Page, ReadError> {
        let backplane = self.backplane();
        let after = since.map_or(0, |s| s.offset);
        let mut got =
            (backplane.read_history(topic, after, retention).await).map_err(ReadError::Store)?;
        let mut complete = true;
        if let Some(since) = since {
            if got.epoch != since.epoch || after > got.last {
                // Another epoch (or a position never given): all that is kept.
                got = (backplane.read_history(topic, 0, retention).await)
                    .map_err(ReadError::Store)?;
                complete = false;
            } else {
                let first = got.messages.first().map_or(got.last + 1, |m| m.offset);
                complete = first == after + 1;
            }
        }
        let epoch = got.epoch;
        Ok(Page {
            last: (got.last > 0).then_some(Position {
                epoch,
                offset: got.last,
            }),
            messages: (got.messages.into_iter())
                .map(|m| {
                    (
                        Position {
                            epoch,
                            offset: m.offset,
                        },
                        m.message,
                    )
                })
                .collect(),
            complete,
        })
    }
}

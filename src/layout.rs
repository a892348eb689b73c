//! Where a room lives in the bucket, and the storage operations on it, each within R2's limits.
//!
//! ```text
//! rooms/<room>/index                          the room document (room::RoomDoc); compare-and-swap only
//! rooms/<room>/pending/<ms>-<nonce>/<context> one change that could not be written to the index at
//!                                             once; written once, never rewritten, deleted when folded
//! rooms/<room>/corrupt/<ms>                   an index that failed to parse, kept before it is replaced
//! ```
//!
//! R2 accepts about one write per second to a key. The index is written only when its
//! `written_at` is at least `Pace::write_gap_ms()` old, so no request of ours writes it faster;
//! every other key is written once. Reads, lists and pending writes retry transient errors with
//! jittered, exponential backoff until the request's deadline; the index write is one attempt
//! (a failed compare-and-swap is answered by folding, not by writing again) and deletes are best
//! effort.

use crate::platform::{Pace, Platform};
use crate::protocol::Rejection;
use crate::room::{Change, RoomDoc};
use crate::store::{Precondition, Store, StoreError};
use std::future::Future;

/// Why a request could not be served.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// The request is wrong: 4xx with a message.
    Rejected(Rejection),
    /// Storage kept failing until the request's deadline: 503, nothing half-written.
    Unavailable(String),
}

impl From<Rejection> for Failure {
    fn from(rejection: Rejection) -> Self {
        Failure::Rejected(rejection)
    }
}

pub fn index_key(room: &str) -> String {
    format!("rooms/{room}/index")
}

pub fn pending_prefix(room: &str) -> String {
    format!("rooms/{room}/pending/")
}

/// The context a pending key belongs to (its last segment, percent-encoded).
pub fn pending_context(key: &str) -> Option<String> {
    key.rsplit('/').next().and_then(crate::protocol::percent_decode)
}

/// The platform time (ms) a pending key was written at (its first path segment after the prefix).
pub fn pending_time(key: &str) -> Option<f64> {
    let rest = key.split("/pending/").nth(1)?;
    rest.get(..15)?.parse::<u64>().ok().map(|ms| ms as f64)
}

/// Where a pending key's nonce falls in `[0, 1)`, in the keys' sort order (its eight characters,
/// `0`–`z` in ASCII order).
fn nonce_rank(key: &str) -> f64 {
    let nonce = key.split("/pending/").nth(1).and_then(|rest| rest.get(16..)).unwrap_or("");
    nonce.bytes().take(8).enumerate().map(|(i, b)| f64::from(b.saturating_sub(b'0').min(74)) / 75f64.powi(i as i32 + 1)).sum()
}

/// One request's view of storage: the store, the platform, the pace, and the request's deadline.
pub struct Storage<'a, S: Store, P: Platform> {
    pub store: &'a S,
    pub platform: &'a P,
    pub pace: Pace,
    /// Platform time (ms) after which the request stops retrying and answers.
    pub deadline_ms: f64,
}

/// A room document as read, with what a write-back must meet.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub doc: RoomDoc,
    /// The version read; `None` if the room has no index yet.
    pub etag: Option<String>,
    /// The stored bytes, when they failed to parse (kept aside before the first write over them).
    pub corrupt: Option<Vec<u8>>,
}

impl<'a, S: Store, P: Platform> Storage<'a, S, P> {
    pub fn new(store: &'a S, platform: &'a P, pace: Pace) -> Self {
        let deadline_ms = platform.now_ms() + pace.budget_ms();
        Storage { store, platform, pace, deadline_ms }
    }

    pub fn now(&self) -> f64 {
        self.platform.now_ms()
    }

    /// Whether the index, as loaded, may be written now.
    pub fn slot_open(&self, doc: &RoomDoc) -> bool {
        self.now() >= doc.written_at + self.pace.write_gap_ms()
    }

    /// Whether the index has not been written for a whole write gap plus the waiters' jitter: no
    /// fold can be due, so a change may be written at once.
    pub fn room_quiet(&self, doc: &RoomDoc) -> bool {
        self.now() >= doc.written_at + self.pace.write_gap_ms() + self.pace.jitter_ms()
    }

    /// How long a change pending under `own_key` waits before looking at the index again: until the
    /// write gap is over, plus a share of the jitter that grows with the key's place in the order
    /// `commit::leads_fold` uses (its write time after the last write, then its nonce). So waiters
    /// wake in that order: the first to wake is the one that folds for everyone, and the rest wake
    /// to find their change done without listing.
    pub fn wait_for_slot_ms(&self, written_at: f64, own_key: &str) -> f64 {
        let gap = self.pace.write_gap_ms();
        let pending_at = pending_time(own_key).unwrap_or_else(|| self.now());
        let lateness = ((pending_at - written_at) / gap).clamp(0.0, 1.0);
        let jitter = self.pace.jitter_ms() * (0.8 * lateness + 0.2 * nonce_rank(own_key));
        (written_at + gap - self.now()).max(0.0) + jitter
    }

    /// Retry `op` on storage errors, with jittered exponential backoff, until the deadline.
    async fn retrying<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T, Failure>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let mut attempt = 0;
        loop {
            match op().await {
                Ok(value) => return Ok(value),
                Err(err) => {
                    let wait = self.pace.backoff_ms(attempt) * (0.5 + self.platform.random());
                    if self.now() + wait > self.deadline_ms {
                        return Err(Failure::Unavailable(format!("Storage is unavailable ({what}: {}), try again", err.0)));
                    }
                    self.platform.sleep(wait).await;
                    attempt += 1;
                }
            }
        }
    }

    /// Read a room's index. A document that fails to parse is logged and treated as an empty room;
    /// its bytes travel with the result so the next write keeps them aside first.
    pub async fn load(&self, room: &str) -> Result<Loaded, Failure> {
        let key = index_key(room);
        let stored = self.retrying("read", || self.store.get(&key)).await?;
        Ok(match stored {
            None => Loaded { doc: RoomDoc::default(), etag: None, corrupt: None },
            Some(stored) => match RoomDoc::from_json(&stored.body) {
                Ok(doc) => Loaded { doc, etag: Some(stored.etag), corrupt: None },
                Err(err) => {
                    self.platform.log(&format!("{key}: stored document does not parse ({err}); serving an empty room, keeping it aside on the next write"));
                    Loaded { doc: RoomDoc::default(), etag: Some(stored.etag), corrupt: Some(stored.body) }
                }
            },
        })
    }

    /// Compare-and-swap `doc` over what `loaded` read: one attempt, true if it landed. A lost race,
    /// a rate limit or an error all answer false (an error may hide a write that landed; callers
    /// find out by reading again).
    pub async fn write_index(&self, room: &str, doc: &RoomDoc, loaded: &Loaded) -> bool {
        if let Some(bytes) = &loaded.corrupt {
            let aside = format!("rooms/{room}/corrupt/{:015}", self.now() as u64);
            let kept = self.retrying("keep a corrupt document", || self.store.put_if(&aside, bytes.clone(), Some(Precondition::Absent))).await;
            if kept.is_err() {
                return false;
            }
            self.platform.log(&format!("{}: corrupt document kept at {aside}", index_key(room)));
        }
        let condition = match &loaded.etag {
            Some(etag) => Precondition::Matches(etag.clone()),
            None => Precondition::Absent,
        };
        matches!(self.store.put_if(&index_key(room), doc.to_json(), Some(condition)).await, Ok(Some(_)))
    }

    /// Store `change` where no one else writes: a key of its own, written once. Retried until the
    /// deadline, each attempt under a new key: a failed attempt may have landed (R2 can report an
    /// error for a write it made), and R2 would refuse a second write to its key. Returns every key
    /// tried, the one that surely landed last: they all hold this change.
    pub async fn put_pending(&self, room: &str, change: &Change) -> Result<Vec<String>, Failure> {
        let body = serde_json::to_vec(change).expect("a change always serializes");
        let context = percent_encode(change.context());
        let keys = std::cell::RefCell::new(Vec::new());
        self.retrying("write", || {
            let attempt = format!("{}{:015}-{}/{}", pending_prefix(room), self.now() as u64, self.platform.random_key(8), context);
            keys.borrow_mut().push(attempt.clone());
            let body = body.clone();
            async move { self.store.put_if(&attempt, body, Some(Precondition::Absent)).await }
        })
        .await?;
        Ok(keys.into_inner())
    }

    /// Pending keys of a room, oldest first (one list call: up to 1000, far more than a room holds).
    pub async fn list_pending(&self, room: &str) -> Result<Vec<String>, Failure> {
        let prefix = pending_prefix(room);
        self.retrying("list", || self.store.list(&prefix)).await
    }

    /// A pending change; `None` if it is gone (folded and deleted meanwhile) or unreadable (logged).
    pub async fn read_pending(&self, key: &str) -> Result<Option<Change>, Failure> {
        let Some(stored) = self.retrying("read", || self.store.get(key)).await? else { return Ok(None) };
        match serde_json::from_slice(&stored.body) {
            Ok(change) => Ok(Some(change)),
            Err(err) => {
                // Kept aside like a corrupt index, then treated as gone (the fold deletes it).
                let aside = key.replacen("/pending/", "/corrupt/pending-", 1);
                self.retrying("keep a corrupt pending change", || self.store.put_if(&aside, stored.body.clone(), Some(Precondition::Absent))).await?;
                self.platform.log(&format!("{key}: pending change does not parse ({err}); kept at {aside}"));
                Ok(None)
            }
        }
    }

    /// Read many pending changes at once (a fold reads them all; one at a time would hold the write
    /// slot for as many round trips). In key order; `Ok(None)` for one that is gone.
    pub async fn read_pending_all(&self, keys: &[String]) -> Vec<Result<Option<Change>, Failure>> {
        join_all(keys.iter().map(|key| self.read_pending(key)).collect()).await
    }

    /// Delete folded pending keys, retrying failures a few times (deletes are free): a key left
    /// behind looks like a waiting change to the next folds for three write gaps, then is folded as
    /// stale and deleted.
    pub async fn delete_folded(&self, keys: &[String]) {
        let mut left: Vec<&String> = keys.iter().collect();
        for attempt in 0..3 {
            let results = join_all(left.iter().map(|key| self.store.delete(key)).collect()).await;
            left = left.into_iter().zip(results).filter(|(_, result)| result.is_err()).map(|(key, _)| key).collect();
            if left.is_empty() {
                return;
            }
            self.platform.sleep(self.pace.backoff_ms(attempt)).await;
        }
    }
}

/// Run futures concurrently on one thread (the Workers runtime overlaps their I/O); outputs in order.
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(move |cx| {
        let mut done = true;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(outputs.iter_mut().filter_map(Option::take).collect())
        } else {
            std::task::Poll::Pending
        }
    })
    .await
}

/// Percent-encode everything but `[A-Za-z0-9_-.]`, so any context id is one safe key segment.
fn percent_encode(s: &str) -> String {
    crate::protocol::percent_encode(s, b"-_.")
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_keys_name_their_context_whatever_it_contains() {
        for context in ["ctx-1", "a/b c%é", "ctx.with.dots"] {
            let key = format!("{}{:015}-{}/{}", pending_prefix("room-1"), 5u64, "nonce", percent_encode(context));
            assert!(key.starts_with("rooms/room-1/pending/000000000000005-nonce/"));
            assert_eq!(pending_context(&key).as_deref(), Some(context));
            assert_eq!(pending_time(&key), Some(5.0));
        }
    }
}

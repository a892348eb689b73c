//! Poll, publish and leave, as storage round-trips over any `Store`.
//!
//! Every change is read–modify–compare-and-swap on the room's one index object: if another
//! writer got in between our read and our write, the write is refused and we merge again onto the
//! newer state (`batch::commit`). That is why no join can be lost, however many peers arrive at
//! once. Changes in flight together in one isolate share one such write (`batch::Committer`). A
//! poll that changes nothing is a single read.

use crate::batch::{not_found, Change, Committer};
use crate::protocol::{Body, Rejection};
use crate::room::{RoomIndex, View};
use crate::store::{Precondition, Store, StoreError};
use serde_json::Value;
use std::future::Future;

/// Compare-and-swap attempts before giving up with 503. Each failed attempt means another writer
/// succeeded, so a storm of N simultaneous writers needs at most N attempts.
pub const MAX_WRITE_ATTEMPTS: u32 = 64;

/// The stored room document may not grow past this (answered 413 "Room is full"). A steady
/// 100-peer room is ~30 KiB; only ~80+ peers all handshaking within one minute reach it
/// (docs/storage.md has the arithmetic).
pub const MAX_ROOM_BYTES: usize = 4 * 1024 * 1024;

/// Why a request could not be served.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// The request is wrong: 4xx with a message.
    Rejected(Rejection),
    /// Storage failed or stayed contended: 503, nothing half-written.
    Unavailable(String),
}

impl From<StoreError> for Failure {
    fn from(err: StoreError) -> Self {
        Failure::Unavailable(err.to_string())
    }
}

impl From<Rejection> for Failure {
    fn from(rejection: Rejection) -> Self {
        Failure::Rejected(rejection)
    }
}

/// The answer to a poll: `{ps, pk, dk?}`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PollAnswer {
    pub view: View,
    pub delete_key: Option<String>,
}

/// The answer's wire form, fields in the reference's order.
#[derive(serde::Serialize)]
struct WireAnswer<'a> {
    ps: &'a [Value],
    pk: &'a [Value],
    #[serde(skip_serializing_if = "Option::is_none")]
    dk: Option<&'a str>,
}

impl PollAnswer {
    pub fn to_json(&self) -> String {
        let wire = WireAnswer { ps: &self.view.peers, pk: &self.view.packages, dk: self.delete_key.as_deref() };
        serde_json::to_string(&wire).expect("an answer always serializes")
    }
}

/// Where a room's index lives in the bucket.
pub fn room_key(room: &str) -> String {
    format!("rooms/{room}/index")
}

/// A room as read from storage, with the precondition a write-back must meet.
pub(crate) struct Loaded {
    pub index: RoomIndex,
    pub write_condition: Precondition,
}

pub(crate) async fn load<S: Store>(store: &S, key: &str) -> Result<Loaded, Failure> {
    match store.get(key).await? {
        None => Ok(Loaded { index: RoomIndex::default(), write_condition: Precondition::Absent }),
        Some(stored) => {
            // A document we cannot read (never written by this worker) is replaced on the next write.
            let index = RoomIndex::from_json(&stored.body).unwrap_or_default();
            Ok(Loaded { index, write_condition: Precondition::Matches(stored.etag) })
        }
    }
}

/// Write `index` if nobody else wrote since we read it. `Ok(false)` means: read again and retry.
pub(crate) async fn write_back<S: Store>(store: &S, key: &str, index: &RoomIndex, condition: Precondition) -> Result<bool, Failure> {
    let body = index.to_json();
    if body.len() > MAX_ROOM_BYTES {
        return Err(Rejection { status: 413, message: "Room is full: too much peer data is stored in it".into() }.into());
    }
    Ok(store.put_if(key, body, Some(condition)).await?.is_some())
}

pub(crate) fn too_busy() -> Failure {
    Failure::Unavailable("The room is too busy right now, try again".into())
}

/// Serve a POST: a read-only poll (one read), or a publish (`d` and `p`) committed with whatever
/// else is in flight for the room, answered with the view after it.
pub async fn poll<S: Store, P: Future<Output = ()>>(
    store: &S,
    committer: &Committer,
    pause: impl Fn() -> P,
    body: &Body,
    now_ms: f64,
    fresh_delete_key: impl FnOnce() -> String,
) -> Result<PollAnswer, Failure> {
    if !body.is_publish() {
        let loaded = load(store, &room_key(&body.room)).await?;
        return Ok(PollAnswer { view: loaded.index.view(body, now_ms), delete_key: None });
    }
    let change = Change::Publish { body: body.clone(), fresh_delete_key: fresh_delete_key() };
    committer.submit(store, &body.room, change, now_ms, pause).await
}

/// Serve a leave (DELETE, or POST with `X-Worker-Method: DELETE`): remove the caller's row.
pub async fn leave<S: Store, P: Future<Output = ()>>(store: &S, committer: &Committer, pause: impl Fn() -> P, body: &Body, now_ms: f64) -> Result<(), Failure> {
    if body.delete_key.is_none() {
        return Err(Rejection::bad_request("Missing delete key").into());
    }
    if body.context.is_none() {
        return Err(not_found());
    }
    committer.submit(store, &body.room, Change::Leave { body: body.clone() }, now_ms, pause).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::parse_body;
    use crate::store::MemoryStore;
    use crate::testing::{block_on, join_all, yield_now};
    use crate::batch::Committer;
    use serde_json::json;
    use std::cell::Cell;
    use std::rc::Rc;

    const NOW: f64 = 1_700_000_000_000.0;
    const DTLS: &str = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=";

    fn publish_body(n: usize, packages: Value) -> Body {
        let raw = json!({
            "r": "room-1", "k": format!("ctx-{n}"), "t": NOW, "x": 120000,
            "d": [format!("sess-{n}"), "client", false, DTLS, NOW, []],
            "p": packages
        });
        parse_body(raw.to_string().as_bytes(), NOW).unwrap()
    }

    fn observer() -> Body {
        parse_body(br#"{"r":"room-1"}"#, NOW).unwrap()
    }

    fn keys() -> impl FnMut() -> String {
        let mut n = 0;
        move || {
            n += 1;
            format!("key-{n}")
        }
    }

    #[test]
    fn a_steady_poll_is_one_read_whatever_the_room_size() {
        let store = MemoryStore::new();
        for n in 0..50 {
            block_on(poll(&store, &Committer::default(), yield_now, &publish_body(n, json!([])), NOW, keys())).unwrap();
        }
        let before = store.ops();
        let mut identified = publish_body(7, json!([]));
        identified.packages = None; // what the p2pcf client sends between heartbeats
        let answer = block_on(poll(&store, &Committer::default(), yield_now, &identified, NOW, keys())).unwrap();
        let after = store.ops();
        assert_eq!(answer.view.peers.len(), 49);
        assert_eq!((after.get - before.get, after.put - before.put), (1, 0));
    }

    #[test]
    fn a_writer_slipping_in_between_read_and_write_is_not_lost() {
        let store = MemoryStore::new();
        block_on(poll(&store, &Committer::default(), yield_now, &publish_body(1, json!([])), NOW, keys())).unwrap();
        // Just before our write lands, peer 2 publishes (once).
        let fired = Rc::new(Cell::new(false));
        let flag = fired.clone();
        store.before_put(move |s| {
            if !flag.replace(true) {
                let mut other = RoomIndex::from_json(&s.peek(&room_key("room-1")).unwrap()).unwrap();
                let b = publish_body(2, json!([]));
                other.publish(b.peer.as_ref().unwrap(), &[], NOW, || "k2".into());
                s.force_put(&room_key("room-1"), &other.to_json());
            }
        });
        block_on(poll(&store, &Committer::default(), yield_now, &publish_body(3, json!([])), NOW, keys())).unwrap();
        assert!(fired.get());
        let seen = block_on(poll(&store, &Committer::default(), yield_now, &observer(), NOW, keys())).unwrap();
        assert_eq!(seen.view.peers.len(), 3, "all of peers 1, 2 and 3 are in the room");
        assert_eq!(store.ops().put, 3, "one refused write, then the retry");
    }

    #[test]
    fn twenty_simultaneous_joins_all_land() {
        let store = crate::testing::YieldingStore::new(MemoryStore::new());
        let bodies: Vec<Body> = (0..20).map(|n| publish_body(n, json!([]))).collect();
        // a committer each: as if every joiner were served by a different isolate
        let committers: Vec<Committer> = bodies.iter().map(|_| Committer::default()).collect();
        let results = block_on(join_all(bodies.iter().zip(&committers).map(|(b, c)| poll(&store, c, yield_now, b, NOW, keys())).collect()));
        assert!(results.iter().all(Result::is_ok));
        let seen = block_on(poll(&store, &Committer::default(), yield_now, &observer(), NOW, keys())).unwrap();
        assert_eq!(seen.view.peers.len(), 20);
    }

    #[test]
    fn storage_failure_is_unavailable_and_changes_nothing() {
        let store = MemoryStore::new();
        block_on(poll(&store, &Committer::default(), yield_now, &publish_body(1, json!([])), NOW, keys())).unwrap();
        let before = store.peek(&room_key("room-1"));
        store.fail_next(1);
        let err = block_on(poll(&store, &Committer::default(), yield_now, &publish_body(2, json!([])), NOW, keys())).unwrap_err();
        assert!(matches!(err, Failure::Unavailable(_)));
        assert_eq!(store.peek(&room_key("room-1")), before);
    }

    #[test]
    fn the_same_timestamp_is_not_written_twice() {
        let store = MemoryStore::new();
        let body = publish_body(1, json!([]));
        let first = block_on(poll(&store, &Committer::default(), yield_now, &body, NOW, keys())).unwrap();
        let second = block_on(poll(&store, &Committer::default(), yield_now, &body, NOW, keys())).unwrap();
        assert_eq!(store.ops().put, 1);
        assert_eq!(first.delete_key, second.delete_key);
    }

    #[test]
    fn leaving_removes_the_row_with_the_right_key_only() {
        let store = MemoryStore::new();
        let body = publish_body(1, json!([]));
        let dk = block_on(poll(&store, &Committer::default(), yield_now, &body, NOW, keys())).unwrap().delete_key.unwrap();
        let mut leave_body = body.clone();
        leave_body.delete_key = Some("wrong".into());
        let err = block_on(leave(&store, &Committer::default(), yield_now, &leave_body, NOW)).unwrap_err();
        assert_eq!(err, Failure::Rejected(Rejection { status: 404, message: "No delete key".into() }));
        leave_body.delete_key = None;
        let err = block_on(leave(&store, &Committer::default(), yield_now, &leave_body, NOW)).unwrap_err();
        assert_eq!(err, Failure::Rejected(Rejection::bad_request("Missing delete key")));
        leave_body.delete_key = Some(dk);
        block_on(leave(&store, &Committer::default(), yield_now, &leave_body, NOW)).unwrap();
        assert!(block_on(poll(&store, &Committer::default(), yield_now, &observer(), NOW, keys())).unwrap().view.peers.is_empty());
    }

    #[test]
    fn an_oversized_room_is_refused_without_writing() {
        let store = MemoryStore::new();
        let big = "x".repeat(60);
        let packages: Vec<Value> = (0..80_000).map(|_| json!(["sess-1", big])).collect();
        let err = block_on(poll(&store, &Committer::default(), yield_now, &publish_body(1, Value::Array(packages)), NOW, keys())).unwrap_err();
        assert!(matches!(err, Failure::Rejected(Rejection { status: 413, .. })));
        assert!(store.keys().is_empty());
    }

    #[test]
    fn the_answer_has_the_wire_shape() {
        let answer = PollAnswer { view: View::default(), delete_key: Some("k".into()) };
        assert_eq!(answer.to_json(), r#"{"ps":[],"pk":[],"dk":"k"}"#);
        let answer = PollAnswer { view: View::default(), delete_key: None };
        assert_eq!(answer.to_json(), r#"{"ps":[],"pk":[]}"#);
    }
}

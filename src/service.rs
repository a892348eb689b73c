//! Poll, publish and leave: what each request reads and writes, over `layout` and `commit`.
//!
//! A poll is one read of the room's index. A publish or leave is a read and, through `commit`, a
//! compare-and-swap or a pending change that a fold lands. An identified poll (`d` and `t`, no `p`)
//! whose row is missing or older than its `t` shows that the client's last publish is not in the
//! index (cancelled, or still pending past its request's budget): that poll lands it, from the
//! pending change if there is one, else by healing the row from the `d` and `t` it carries. The
//! p2pcf client never resends a publish, so this is what makes a lost answer harmless.

use crate::commit::{commit, fold_until_landed};
use crate::layout::{pending_context, Failure, Storage};
use crate::platform::Platform;
use crate::protocol::{Body, Rejection};
use crate::room::{Change, Leave, Mode, Package, Publish, RoomDoc, View};
use crate::store::Store;
use serde_json::value::{to_raw_value, RawValue};
use serde_json::Value;

/// Length of a delete key, as the reference (24 characters of [A-Za-z0-9]).
pub const DELETE_KEY_LEN: usize = 24;

/// The answer to a poll: `{ps, pk, dk?}`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PollAnswer {
    pub view: View,
    pub delete_key: Option<String>,
}

impl PollAnswer {
    /// The wire form, fields in the reference's order; rows and packages are spliced in as stored.
    pub fn to_json(&self) -> String {
        let size = self.view.peers.iter().chain(&self.view.packages).map(|s| s.len() + 1).sum::<usize>() + 64;
        let mut out = String::with_capacity(size);
        out.push_str("{\"ps\":[");
        out.push_str(&self.view.peers.join(","));
        out.push_str("],\"pk\":[");
        out.push_str(&self.view.packages.join(","));
        out.push(']');
        if let Some(dk) = &self.delete_key {
            out.push_str(",\"dk\":");
            out.push_str(&serde_json::to_string(dk).expect("a string serializes"));
        }
        out.push('}');
        out
    }
}

fn raw(value: &impl serde::Serialize) -> Box<RawValue> {
    to_raw_value(value).expect("validated JSON serializes")
}

/// The change a publish asks for (`d` and `p` present), or a heal from an identified poll.
fn publish_change(body: &Body, packages: Vec<Package>, fresh_dk: String) -> Option<Change> {
    let peer = body.peer.as_ref()?;
    Some(Change::Publish(Publish {
        k: peer.context.clone(),
        s: peer.data.session_id.clone(),
        d: raw(&peer.data.values),
        t: peer.timestamp.clone(),
        x: peer.expiry_ms,
        p: packages,
        fresh_dk,
    }))
}

fn wire_packages(packages: &[Value]) -> Vec<Package> {
    packages
        .iter()
        .filter_map(|package| Some(Package(crate::protocol::package_target(package)?.to_owned(), raw(package))))
        .collect()
}

fn answer(doc: &RoomDoc, body: &Body, delete_key: Option<String>, now_ms: f64) -> PollAnswer {
    let session = body.peer.as_ref().map(|peer| peer.data.session_id.as_str());
    PollAnswer { view: doc.view(body.context.as_deref(), session, now_ms), delete_key }
}

/// Serve a POST: a poll (one read, unless it has to land a lost publish) or a publish.
pub async fn poll<S: Store, P: Platform>(storage: &Storage<'_, S, P>, body: &Body) -> Result<PollAnswer, Failure> {
    let loaded = storage.load(&body.room).await?;
    if let (true, Some(packages)) = (body.is_publish(), &body.packages) {
        let fresh_dk = storage.platform.random_key(DELETE_KEY_LEN);
        let change = publish_change(body, wire_packages(packages), fresh_dk).expect("a publish has d");
        let committed = commit(storage, &body.room, &change, Mode::Direct, loaded).await?;
        return Ok(answer(&committed.doc, body, committed.delete_key, storage.now()));
    }
    if !publish_lost(&loaded.doc, body, storage.now()) {
        return Ok(answer(&loaded.doc, body, None, storage.now()));
    }
    let doc = match land_lost_publish(storage, body, loaded).await {
        Some(doc) => doc,
        None => storage.load(&body.room).await?.doc, // rare: a lost publish could not be landed now
    };
    Ok(answer(&doc, body, None, storage.now()))
}

/// Whether `body` is an identified poll whose client's last publish is not in `doc`: no live row
/// for its context, or a live row with an older `t` that is due for its heartbeat
/// (`PeerRow::is_due`). A row merely older than the poll's `t` is usually a publish still being
/// folded by its own request, and is left alone, so polls stay one read.
fn publish_lost(doc: &RoomDoc, body: &Body, now_ms: f64) -> bool {
    let Some(peer) = body.peer.as_ref() else { return false };
    match doc.row(&peer.context, now_ms) {
        Some(row) => row.is_due(now_ms) && matches!((row.t.as_f64(), peer.timestamp.as_f64()), (Some(stored), Some(asked)) if stored < asked),
        // No live row: worth a list only if the context had a row, or published within the last
        // minute (a join still pending); not for every poll of a client that never got in.
        None => doc.peers.iter().any(|row| row.k == peer.context) || peer.timestamp.as_f64().is_some_and(|t| (now_ms - t).abs() < RECENT_PUBLISH_MS),
    }
}

/// How recent a poll's `t` must be for a row-less identified poll to look for its pending join.
const RECENT_PUBLISH_MS: f64 = 60_000.0;

/// Land the lost publish of an identified poll (`publish_lost`): its pending change if there is
/// one, else a heal from the poll's `d` and `t`. `None` if there is nothing to land or it could not
/// be landed now.
async fn land_lost_publish<S: Store, P: Platform>(storage: &Storage<'_, S, P>, body: &Body, loaded: crate::layout::Loaded) -> Option<RoomDoc> {
    let peer = body.peer.as_ref()?;
    let keys = storage.list_pending(&body.room).await.ok()?;
    let mine = keys.iter().rev().find(|key| pending_context(key).as_deref() == Some(peer.context.as_str()));
    if let Some(key) = mine {
        if let Ok(Some(change)) = storage.read_pending(key).await {
            return fold_until_landed(storage, &body.room, &change, std::slice::from_ref(key), Mode::Folded, loaded).await.ok().map(|c| c.doc);
        }
    }
    // No pending change: heal the row from what the poll carries, keeping its stored packages. Only
    // a context that has a row (live or dead) is healed; a poll never creates a peer by itself.
    let row = loaded.doc.peers.iter().find(|row| row.k == peer.context)?;
    let heal = publish_change(body, row.p.clone(), row.dk.clone())?;
    commit(storage, &body.room, &heal, Mode::Folded, loaded).await.ok().map(|c| c.doc)
}

/// Serve a leave (DELETE, or POST with `X-Worker-Method: DELETE`): remove the caller's row.
pub async fn leave<S: Store, P: Platform>(storage: &Storage<'_, S, P>, body: &Body) -> Result<(), Failure> {
    let Some(delete_key) = body.delete_key.clone() else {
        return Err(Rejection::bad_request("Missing delete key").into());
    };
    let Some(context) = body.context.clone() else {
        return Err(crate::room::not_found().into());
    };
    let change = Change::Leave(Leave {
        k: context,
        s: body.peer.as_ref().map(|peer| peer.data.session_id.clone()),
        dk: delete_key,
        t: body.peer.as_ref().and_then(|peer| peer.timestamp.as_f64()),
    });
    let loaded = storage.load(&body.room).await?;
    match commit(storage, &body.room, &change, Mode::Direct, loaded).await {
        Err(Failure::Rejected(rejection)) if rejection.status == 404 => leave_unlanded(storage, body, &change, rejection).await,
        other => other.map(|_| ()),
    }
}

/// A leave that matched no row may be racing its own publish, still pending (one that will hand
/// out this delete key): then the leave is stored pending too and folded after it (pending changes
/// apply in order), so the row never appears. Otherwise it is the 404 it seemed.
async fn leave_unlanded<S: Store, P: Platform>(storage: &Storage<'_, S, P>, body: &Body, change: &Change, not_found: Rejection) -> Result<(), Failure> {
    let Change::Leave(leave) = change else { return Err(not_found.into()) };
    let keys = storage.list_pending(&body.room).await?;
    let mine: Vec<String> = keys.into_iter().filter(|key| pending_context(key).as_deref() == Some(leave.k.as_str())).collect();
    let pending = storage.read_pending_all(&mine).await;
    let racing = pending.into_iter().any(|read| matches!(read, Ok(Some(Change::Publish(p))) if p.fresh_dk == leave.dk));
    if !racing {
        return Err(not_found.into());
    }
    let own_keys = storage.put_pending(&body.room, change).await?;
    let loaded = storage.load(&body.room).await?;
    fold_until_landed(storage, &body.room, change, &own_keys, Mode::Folded, loaded).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{index_key, pending_prefix};
    use crate::platform::Pace;
    use crate::protocol::parse_body;
    use crate::store::MemoryStore;
    use crate::testing::{block_on, join_all, LatentStore, TestPlatform, YieldingStore};
    use serde_json::json;
    use std::future::Future;
    use std::task::{Context, Poll, Waker};

    const NOW: f64 = 1_700_000_000_000.0;
    const DTLS: &str = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=";
    const SECOND: f64 = 1000.0;

    /// A room as R2 would hold it: one write per key per second, on the test clock.
    fn r2_like(platform: &TestPlatform) -> YieldingStore<MemoryStore> {
        let store = MemoryStore::new();
        store.limit_writes(SECOND, platform.clock_fn());
        YieldingStore::new(store)
    }

    fn storage<'a, S: Store>(store: &'a S, platform: &'a TestPlatform) -> Storage<'a, S, TestPlatform> {
        Storage::new(store, platform, Pace::default())
    }

    fn body(value: Value, now: f64) -> Body {
        parse_body(value.to_string().as_bytes(), now).unwrap()
    }

    fn publish(n: usize, t: f64, packages: Value) -> Value {
        json!({
            "r": "room-1", "k": format!("ctx-{n}"), "t": t, "x": 120000,
            "d": [format!("sess-{n}"), "client", false, DTLS, NOW, []], "p": packages
        })
    }

    fn identified_poll(n: usize, t: f64) -> Value {
        let mut poll = publish(n, t, json!([]));
        poll.as_object_mut().unwrap().remove("p");
        poll
    }

    /// Serve one request on its own, as if in an isolate of its own (nothing shared but storage).
    async fn serve<S: Store>(store: &S, platform: &TestPlatform, request: Value) -> Result<PollAnswer, Failure> {
        let storage = storage(store, platform);
        poll(&storage, &body(request, platform.now_ms())).await
    }

    /// The sessions an observer sees, sorted.
    fn observe<S: Store>(store: &S, platform: &TestPlatform) -> Vec<String> {
        let answer = block_on(platform, serve(store, platform, json!({"r": "room-1"}))).unwrap();
        let mut seen: Vec<String> = answer.view.peers.iter().map(|row| serde_json::from_str::<Value>(row).unwrap()[0].as_str().unwrap().to_owned()).collect();
        seen.sort();
        seen
    }

    /// Poll `future` `n` times without finishing it, then drop it: a cancelled request.
    fn cancel_after<F: Future>(platform: &TestPlatform, future: F, polls: usize) {
        let mut future = std::pin::pin!(future);
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..polls {
            assert!(matches!(future.as_mut().poll(&mut cx), Poll::Pending), "finished before it was cancelled");
        }
        let _ = platform;
    }

    #[test]
    fn a_steady_poll_is_one_read_whatever_the_room_size() {
        let platform = TestPlatform::at(NOW);
        let store = MemoryStore::new();
        block_on(&platform, join_all((0..50).map(|n| serve(&store, &platform, publish(n, NOW, json!([])))).collect()));
        let before = store.ops();
        let answer = block_on(&platform, serve(&store, &platform, identified_poll(7, NOW))).unwrap();
        let after = store.ops();
        assert_eq!(answer.view.peers.len(), 49);
        assert_eq!((after.get - before.get, after.put - before.put, after.list - before.list), (1, 0, 0));
    }

    #[test]
    fn twenty_lone_joiners_under_r2_limits_all_land_within_seconds() {
        let platform = TestPlatform::at(NOW);
        let store = r2_like(&platform);
        store.0.fail_share(0.02, 7);
        let results = block_on(&platform, join_all((0..20).map(|n| serve(&store, &platform, publish(n, NOW, json!([])))).collect()));
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        let took = platform.now_ms() - NOW;
        store.0.fail_share(0.0, 1);
        assert_eq!(observe(&store, &platform).len(), 20);
        assert!(took < 10.0 * SECOND, "took {took} ms");
        assert_eq!(store.0.max_writes_within(SECOND), 1, "no key written twice within a second");
        let index_writes = store.0.writes_of(&index_key("room-1"));
        assert!(index_writes <= 4, "{index_writes} index writes for 20 joins");
        // one list per waiter at most: a waiter that wakes while the leader folds lists once, learns
        // it follows, and next finds its change done
        let lists = store.0.ops().list;
        assert!(lists <= 20, "{lists} lists for 20 joins");
        assert!(store.0.keys().iter().all(|k| !k.starts_with(&pending_prefix("room-1"))), "pending changes are deleted once folded");
    }

    #[test]
    fn with_real_round_trips_waiters_fold_in_arrival_order_instead_of_stampeding() {
        // 40 publishes arriving over 4 s with 30 ms per storage operation: a busy room
        let platform = TestPlatform::at(NOW);
        let memory = MemoryStore::new();
        memory.limit_writes(SECOND, platform.clock_fn());
        let store = LatentStore { inner: memory, platform: &platform, latency_ms: 30.0 };
        let requests = (0..40).map(|n| {
            let (store, platform) = (&store, &platform);
            async move {
                platform.sleep(n as f64 * 100.0).await;
                serve(store, platform, publish(n, NOW, json!([]))).await
            }
        });
        let results = block_on(&platform, join_all(requests.collect()));
        assert!(results.iter().all(Result::is_ok));
        assert_eq!(observe(&store, &platform).len(), 40);
        let ops = store.inner.ops();
        let index_writes = store.inner.writes_of(&index_key("room-1"));
        println!("40 publishes over 4 s: {} index writes, {} lists, {} gets, {} puts", index_writes, ops.list, ops.get, ops.put);
        assert!(ops.list as usize <= 3 * index_writes + 2, "{} lists for {index_writes} folds", ops.list);
        assert!(ops.put as usize <= 40 + index_writes + 6, "{} puts: pending writes, folds, and few lost races", ops.put);
    }

    #[test]
    fn the_index_is_never_written_twice_within_a_second_by_construction() {
        // no refusals here: only our own pacing can keep the writes apart
        let platform = TestPlatform::at(NOW);
        let store = YieldingStore::new(MemoryStore::new());
        store.0.record_writes(platform.clock_fn());
        for wave in 0..5 {
            let joiners = (0..20).map(|n| serve(&store, &platform, publish(wave * 100 + n, platform.now_ms(), json!([])))).collect();
            assert!(block_on(&platform, join_all(joiners)).iter().all(Result::is_ok));
        }
        assert_eq!(observe(&store, &platform).len(), 100);
        assert_eq!(store.0.max_writes_within(SECOND), 1);
    }

    /// Peer 1 in the room; peer 2 publishes while the slot is closed: it writes its pending change,
    /// then is cancelled while waiting for the slot (its client went away, or the runtime dropped it).
    fn room_with_a_cancelled_publish(platform: &TestPlatform) -> YieldingStore<MemoryStore> {
        let store = r2_like(platform);
        block_on(platform, serve(&store, platform, publish(1, NOW, json!([])))).unwrap();
        cancel_after(platform, serve(&store, platform, publish(2, NOW, json!([]))), 4);
        store
    }

    #[test]
    fn a_cancelled_request_leaves_the_room_usable_and_its_change_lands() {
        let platform = TestPlatform::at(NOW);
        let store = room_with_a_cancelled_publish(&platform);
        assert_eq!(store.0.keys().iter().filter(|k| k.starts_with(&pending_prefix("room-1"))).count(), 1);
        // nothing is wedged: peer 3's publish lands at once once the slot is open, and folds peer 2's
        platform.advance(2.0 * SECOND);
        block_on(&platform, serve(&store, &platform, publish(3, NOW, json!([])))).unwrap();
        platform.advance(2.0 * SECOND);
        // 3 wrote directly (slot open); 2 is still pending: its own client's next identified poll lands it
        assert_eq!(observe(&store, &platform), ["sess-1", "sess-3"]);
        block_on(&platform, serve(&store, &platform, identified_poll(2, NOW))).unwrap();
        assert_eq!(observe(&store, &platform), ["sess-1", "sess-2", "sess-3"]);
        assert!(store.0.keys().iter().all(|k| !k.starts_with(&pending_prefix("room-1"))));
    }

    #[test]
    fn a_pending_change_is_folded_by_the_next_writer_that_has_to_wait() {
        let platform = TestPlatform::at(NOW);
        let store = room_with_a_cancelled_publish(&platform);
        // peer 3 arrives while the slot is still closed: it goes pending too, and its fold takes 2 along
        block_on(&platform, serve(&store, &platform, publish(3, NOW, json!([])))).unwrap();
        assert_eq!(observe(&store, &platform).len(), 3);
    }

    #[test]
    fn an_identified_poll_heals_a_row_that_fell_behind_from_its_d_and_t() {
        let platform = TestPlatform::at(NOW);
        let store = MemoryStore::new();
        let b_package = json!([["sess-2", "sess-1", "u", "p", DTLS, null, null, NOW, []]]);
        block_on(&platform, serve(&store, &platform, publish(2, NOW, json!([])))).unwrap();
        platform.advance(2.0 * SECOND);
        block_on(&platform, serve(&store, &platform, publish(1, NOW, b_package))).unwrap();
        // peer 1's heartbeat (t + 90 s) was lost entirely: no pending change, the row keeps the old t
        platform.advance(90.0 * SECOND);
        let late = NOW + 90.0 * SECOND;
        let before = store.ops();
        block_on(&platform, serve(&store, &platform, identified_poll(1, late))).unwrap();
        let ops = store.ops();
        assert_eq!((ops.list - before.list, ops.put - before.put), (1, 1), "a behind row costs a list and a write, once");
        let stored = crate::room::RoomDoc::from_json(&store.peek(&index_key("room-1")).unwrap()).unwrap();
        let row = stored.row("ctx-1", platform.now_ms()).unwrap();
        assert_eq!(row.t.as_f64(), Some(late));
        assert_eq!(row.p.len(), 1, "its packages are kept");
        // and now it is not behind: the next poll is one read again
        let before = store.ops();
        block_on(&platform, serve(&store, &platform, identified_poll(1, late))).unwrap();
        assert_eq!((store.ops().get - before.get, store.ops().list - before.list), (1, 0));
        // a poll never creates a peer that never published
        block_on(&platform, serve(&store, &platform, identified_poll(9, late))).unwrap();
        assert_eq!(observe(&store, &platform).len(), 2);
    }

    /// The delete key a pending publish of `context` will hand out (its request never answered).
    fn pending_delete_key(store: &MemoryStore, context: &str) -> String {
        let key = store.keys().into_iter().find(|k| k.starts_with(&pending_prefix("room-1")) && k.ends_with(context)).unwrap();
        match serde_json::from_slice::<Change>(&store.peek(&key).unwrap()).unwrap() {
            Change::Publish(p) => p.fresh_dk,
            Change::Leave(_) => unreachable!(),
        }
    }

    #[test]
    fn a_leave_racing_its_own_pending_publish_keeps_the_peer_out() {
        let platform = TestPlatform::at(NOW);
        let store = room_with_a_cancelled_publish(&platform);
        let dk = pending_delete_key(&store.0, "ctx-2");
        let storage = storage(&store, &platform);
        let mut wrong = identified_poll(2, NOW);
        wrong["dk"] = json!("not-the-key");
        let refused = block_on(&platform, leave(&storage, &body(wrong, platform.now_ms())));
        assert_eq!(refused, Err(Failure::Rejected(crate::room::not_found())), "a wrong key is still a 404");
        let mut request = identified_poll(2, NOW);
        request["dk"] = json!(dk);
        assert_eq!(block_on(&platform, leave(&storage, &body(request, platform.now_ms()))), Ok(()));
        platform.advance(3.0 * SECOND);
        block_on(&platform, serve(&store, &platform, publish(3, platform.now_ms(), json!([])))).unwrap();
        platform.advance(3.0 * SECOND);
        assert_eq!(observe(&store, &platform), ["sess-1", "sess-3"], "peer 2 never appears");
    }

    #[test]
    fn a_heal_racing_a_leave_does_not_bring_the_peer_back() {
        let platform = TestPlatform::at(NOW);
        let store = r2_like(&platform);
        let dk = block_on(&platform, serve(&store, &platform, publish(1, NOW, json!([])))).unwrap().delete_key.unwrap();
        platform.advance(95.0 * SECOND); // due for its heartbeat, which was lost
        let late = platform.now_ms();
        let mut leave_request = identified_poll(1, late + 1.0);
        leave_request["dk"] = json!(dk);
        let leave_body = body(leave_request, late);
        let leave_storage = storage(&store, &platform);
        let results = block_on(&platform, join_all(vec![
            Box::pin(async { serve(&store, &platform, identified_poll(1, late)).await.map(|_| ()) }) as std::pin::Pin<Box<dyn Future<Output = Result<(), Failure>>>>,
            Box::pin(leave(&leave_storage, &leave_body)),
        ]));
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        platform.advance(3.0 * SECOND);
        assert!(observe(&store, &platform).is_empty(), "the leave wins: the heal of an older t does not undo it");
    }

    #[test]
    fn a_writer_slipping_in_between_read_and_write_is_not_lost() {
        let platform = TestPlatform::at(NOW);
        let store = MemoryStore::new();
        block_on(&platform, serve(&store, &platform, publish(1, NOW, json!([])))).unwrap();
        platform.advance(2.0 * SECOND);
        let fired = std::rc::Rc::new(std::cell::Cell::new(false));
        let flag = fired.clone();
        let sneak = serde_json::to_vec(&json!({"peers": [], "written_at": NOW + 2000.0})).unwrap();
        store.before_put(move |s| {
            if !flag.replace(true) {
                // another isolate rewrote the room just before our compare-and-swap
                let mut doc = crate::room::RoomDoc::from_json(&s.peek(&index_key("room-1")).unwrap()).unwrap();
                let other = crate::room::RoomDoc::from_json(&sneak).unwrap();
                doc.written_at = other.written_at;
                s.force_put(&index_key("room-1"), &doc.to_json());
            }
        });
        block_on(&platform, serve(&store, &platform, publish(2, NOW, json!([])))).unwrap();
        assert!(fired.get());
        assert_eq!(observe(&store, &platform).len(), 2);
    }

    #[test]
    fn transient_failures_are_retried_within_the_budget_and_past_it_answer_503() {
        let platform = TestPlatform::at(NOW);
        let store = MemoryStore::new();
        store.fail_next(3);
        assert!(block_on(&platform, serve(&store, &platform, publish(1, NOW, json!([])))).is_ok());
        let before = store.peek(&index_key("room-1"));
        store.fail_next(10_000);
        let err = block_on(&platform, serve(&store, &platform, publish(2, platform.now_ms(), json!([])))).unwrap_err();
        assert!(matches!(err, Failure::Unavailable(_)));
        assert_eq!(store.peek(&index_key("room-1")), before, "nothing half-written");
    }

    #[test]
    fn a_write_that_landed_but_reported_an_error_is_answered_once_and_stored_once() {
        let platform = TestPlatform::at(NOW);
        let store = MemoryStore::new();
        store.ghost_next_writes(1);
        let answer = block_on(&platform, serve(&store, &platform, publish(1, NOW, json!([])))).unwrap();
        let stored = crate::room::RoomDoc::from_json(&store.peek(&index_key("room-1")).unwrap()).unwrap();
        assert_eq!(stored.peers.len(), 1);
        assert_eq!(answer.delete_key.as_deref(), Some(stored.peers[0].dk.as_str()));
        assert!(store.keys().iter().all(|k| !k.starts_with(&pending_prefix("room-1"))));
    }

    #[test]
    fn a_corrupt_room_document_is_logged_and_kept_aside_not_silently_replaced() {
        let platform = TestPlatform::at(NOW);
        let store = MemoryStore::new();
        store.force_put(&index_key("room-1"), b"{not json");
        assert!(observe(&store, &platform).is_empty());
        assert!(platform.logs.borrow().iter().any(|l| l.contains("does not parse")));
        block_on(&platform, serve(&store, &platform, publish(1, NOW, json!([])))).unwrap();
        let aside: Vec<String> = store.keys().into_iter().filter(|k| k.starts_with("rooms/room-1/corrupt/")).collect();
        assert_eq!(aside.len(), 1);
        assert_eq!(store.peek(&aside[0]).unwrap(), b"{not json");
        assert_eq!(observe(&store, &platform).len(), 1);
    }

    #[test]
    fn one_refused_change_does_not_fail_the_others_folded_with_it() {
        let platform = TestPlatform::at(NOW);
        let store = r2_like(&platform);
        // a full room: MAX_ROWS members
        let members: Vec<Value> = (0..crate::room::MAX_ROWS).map(|n| publish(n, NOW, json!([]))).collect();
        block_on(&platform, join_all(members.into_iter().map(|m| serve(&store, &platform, m)).collect()));
        platform.advance(2.0 * SECOND);
        // at once: a stranger (refused: full) and two members' heartbeats
        let results = block_on(&platform, join_all(vec![
            serve(&store, &platform, publish(500, NOW, json!([]))),
            serve(&store, &platform, publish(1, NOW + 5.0, json!([]))),
            serve(&store, &platform, publish(2, NOW + 5.0, json!([]))),
        ]));
        assert!(matches!(&results[0], Err(Failure::Rejected(Rejection { status: 413, .. }))), "{:?}", results[0]);
        assert!(results[1].is_ok() && results[2].is_ok());
        let stored = crate::room::RoomDoc::from_json(&store.0.peek(&index_key("room-1")).unwrap()).unwrap();
        assert_eq!(stored.row("ctx-2", platform.now_ms()).unwrap().t.as_f64(), Some(NOW + 5.0));
    }

    #[test]
    fn the_same_timestamp_is_not_written_twice() {
        let platform = TestPlatform::at(NOW);
        let store = MemoryStore::new();
        let first = block_on(&platform, serve(&store, &platform, publish(1, NOW, json!([])))).unwrap();
        let second = block_on(&platform, serve(&store, &platform, publish(1, NOW, json!([])))).unwrap();
        assert_eq!(store.ops().put, 1);
        assert_eq!(first.delete_key, second.delete_key);
    }

    #[test]
    fn leaving_removes_the_row_with_the_right_key_only() {
        let platform = TestPlatform::at(NOW);
        let store = r2_like(&platform);
        let dk = block_on(&platform, serve(&store, &platform, publish(1, NOW, json!([])))).unwrap().delete_key.unwrap();
        let leave_with = |dk: Option<&str>| {
            let mut request = identified_poll(1, NOW);
            if let Some(dk) = dk {
                request["dk"] = json!(dk);
            }
            let storage = storage(&store, &platform);
            block_on(&platform, leave(&storage, &body(request, NOW)))
        };
        assert_eq!(leave_with(Some("wrong")), Err(Failure::Rejected(Rejection { status: 404, message: "No delete key".into() })));
        assert_eq!(leave_with(None), Err(Failure::Rejected(Rejection::bad_request("Missing delete key"))));
        assert_eq!(leave_with(Some(&dk)), Ok(()), "the slot is closed right after the publish: the leave waits for it");
        assert!(observe(&store, &platform).is_empty());
    }

    #[test]
    fn the_answer_has_the_wire_shape() {
        let answer = PollAnswer { view: View::default(), delete_key: Some("k".into()) };
        assert_eq!(answer.to_json(), r#"{"ps":[],"pk":[],"dk":"k"}"#);
        let answer = PollAnswer { view: View { peers: vec!["[1,2]".into(), "[3]".into()], packages: vec!["[\"s\"]".into()] }, delete_key: None };
        assert_eq!(answer.to_json(), r#"{"ps":[[1,2],[3]],"pk":[["s"]]}"#);
    }
}

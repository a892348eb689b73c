//! Group commit: concurrent changes to one room, in one isolate, share one compare-and-swap.
//!
//! R2 allows about one write per second to a key, and every publish rewrites its room's index.
//! When many peers publish at once (a join storm, or a busy room forming its mesh), retrying
//! each writer's compare-and-swap separately costs O(N²) reads and writes. Instead, the first
//! request for a room becomes the *leader*: it collects every change that arrives while it
//! works, applies them all to one read of the index, and writes once. Requests that arrive
//! meanwhile wait for their result; when the leader's own change is done and others are still
//! waiting, it hands leadership to the oldest of them. Across isolates, compare-and-swap still
//! arbitrates (see `service`), so nothing is lost either way.
//!
//! The leader's answer reports the storage operations of the whole batch; the others report none.
//!
//! Waiting requests poll their result behind a short timer (`pause`) rather than sleeping on a
//! waker: the Workers runtime cancels a request as hung when nothing of its own is pending.

use crate::protocol::{Body, Rejection};
use crate::room::{PublishOutcome, RoomIndex};
use crate::service::{load, room_key, too_busy, write_back, Failure, Loaded, PollAnswer, MAX_WRITE_ATTEMPTS};
use crate::store::Store;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;

/// A change to a room's index.
#[derive(Debug, Clone)]
pub enum Change {
    /// A publish (`d` and `p`), with the delete key to hand out if the context is new.
    Publish { body: Body, fresh_delete_key: String },
    /// A leave, already checked to carry a delete key and a context.
    Leave { body: Body },
}

pub type Outcome = Result<PollAnswer, Failure>;

/// What a waiting request learns.
enum SlotState {
    Waiting,
    Done(Outcome),
    /// The previous leader left: this request now leads.
    Lead,
}

struct Slot(RefCell<SlotState>);

impl Slot {
    fn new() -> Rc<Slot> {
        Rc::new(Slot(RefCell::new(SlotState::Waiting)))
    }

    fn settle(&self, state: SlotState) {
        *self.0.borrow_mut() = state;
    }

    fn is_waiting(&self) -> bool {
        matches!(*self.0.borrow(), SlotState::Waiting)
    }

    /// Wait until settled, checking after each `pause`: `Ok(outcome)`, or `Err(())` when
    /// promoted to leader.
    async fn wait<P: Future<Output = ()>>(&self, pause: impl Fn() -> P) -> Result<Outcome, ()> {
        loop {
            match std::mem::replace(&mut *self.0.borrow_mut(), SlotState::Waiting) {
                SlotState::Waiting => {}
                SlotState::Lead => return Err(()),
                SlotState::Done(outcome) => return Ok(outcome),
            }
            pause().await;
        }
    }
}

struct Pending {
    change: Change,
    slot: Rc<Slot>,
}

#[derive(Default)]
struct RoomQueue {
    pending: RefCell<Vec<Pending>>,
    leading: Cell<bool>,
}

/// The per-isolate group-commit queues, one per room with changes in flight.
#[derive(Default)]
pub struct Committer {
    rooms: RefCell<HashMap<String, Rc<RoomQueue>>>,
}

impl Committer {
    /// Apply `change` to `room` together with whatever else is in flight for it.
    /// `pause` is a short timer; waiting requests check for their result after each one.
    pub async fn submit<S: Store, P: Future<Output = ()>>(&self, store: &S, room: &str, change: Change, now_ms: f64, pause: impl Fn() -> P) -> Outcome {
        let queue = self.rooms.borrow_mut().entry(room.to_owned()).or_default().clone();
        let slot = Slot::new();
        queue.pending.borrow_mut().push(Pending { change, slot: slot.clone() });

        if queue.leading.get() {
            match slot.wait(&pause).await {
                Ok(outcome) => return outcome,
                Err(()) => {} // promoted: lead from here
            }
        }
        queue.leading.set(true);
        while slot.is_waiting() {
            let batch: Vec<Pending> = std::mem::take(&mut *queue.pending.borrow_mut());
            let changes: Vec<&Change> = batch.iter().map(|p| &p.change).collect();
            let outcomes = commit(store, room, &changes, now_ms).await;
            for (pending, outcome) in batch.into_iter().zip(outcomes) {
                pending.slot.settle(SlotState::Done(outcome));
            }
        }
        queue.leading.set(false);
        let next = queue.pending.borrow().first().map(|p| p.slot.clone());
        match next {
            Some(next) => {
                queue.leading.set(true);
                next.settle(SlotState::Lead);
            }
            None => {
                self.rooms.borrow_mut().remove(room);
            }
        }
        match slot.wait(&pause).await {
            Ok(outcome) => outcome,
            Err(()) => unreachable!("a settled leader is never promoted"),
        }
    }
}

/// Apply `changes` in order to one read of the room, write once, and answer each.
pub async fn commit<S: Store>(store: &S, room: &str, changes: &[&Change], now_ms: f64) -> Vec<Outcome> {
    let key = room_key(room);
    for _ in 0..MAX_WRITE_ATTEMPTS {
        let Loaded { mut index, write_condition } = match load(store, &key).await {
            Ok(loaded) => loaded,
            Err(failure) => return changes.iter().map(|_| Err(failure.clone())).collect(),
        };
        let (changed, applied) = apply_all(&mut index, changes, now_ms);
        if changed {
            match write_back(store, &key, &index, write_condition).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(failure) => return changes.iter().map(|_| Err(failure.clone())).collect(),
            }
        }
        return changes
            .iter()
            .zip(applied)
            .map(|(change, applied)| {
                let delete_key = applied?;
                Ok(match change {
                    Change::Publish { body, .. } => PollAnswer { view: index.view(body, now_ms), delete_key },
                    Change::Leave { .. } => PollAnswer::default(),
                })
            })
            .collect();
    }
    changes.iter().map(|_| Err(too_busy())).collect()
}

/// Apply each change; returns whether the index changed, and per change its delete key or refusal.
fn apply_all(index: &mut RoomIndex, changes: &[&Change], now_ms: f64) -> (bool, Vec<Result<Option<String>, Failure>>) {
    let mut changed = false;
    let results = changes
        .iter()
        .map(|change| match change {
            Change::Publish { body, fresh_delete_key } => {
                let (Some(caller), Some(packages)) = (&body.peer, &body.packages) else {
                    return Ok(None);
                };
                match index.publish(caller, packages, now_ms, || fresh_delete_key.clone()) {
                    PublishOutcome::Unchanged { delete_key } => Ok(Some(delete_key)),
                    PublishOutcome::Changed { delete_key } => {
                        changed = true;
                        Ok(Some(delete_key))
                    }
                }
            }
            Change::Leave { body } => {
                let session = body.peer.as_ref().map(|peer| peer.data.session_id.as_str());
                let (Some(context), Some(delete_key)) = (body.context.as_deref(), body.delete_key.as_deref()) else {
                    return Err(not_found());
                };
                if index.leave(context, session, delete_key) {
                    changed = true;
                    Ok(None)
                } else {
                    Err(not_found())
                }
            }
        })
        .collect();
    if changed {
        index.prune(now_ms);
    }
    (changed, results)
}

pub fn not_found() -> Failure {
    Failure::Rejected(Rejection { status: 404, message: "No delete key".into() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::parse_body;
    use crate::store::MemoryStore;
    use crate::testing::{block_on, join_all, yield_now, YieldingStore};
    use serde_json::json;

    const NOW: f64 = 1_700_000_000_000.0;
    const DTLS: &str = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=";

    fn publish(n: usize) -> Change {
        let raw = json!({
            "r": "room-1", "k": format!("ctx-{n}"), "t": NOW, "x": 120000,
            "d": [format!("sess-{n}"), "client", false, DTLS, NOW, []], "p": []
        });
        Change::Publish { body: parse_body(raw.to_string().as_bytes(), NOW).unwrap(), fresh_delete_key: format!("key-{n}") }
    }

    fn observe(store: &impl Store) -> usize {
        let body = parse_body(br#"{"r":"room-1"}"#, NOW).unwrap();
        block_on(crate::service::poll(store, &Committer::default(), yield_now, &body, NOW, || unreachable!())).unwrap().view.peers.len()
    }

    #[test]
    fn a_storm_in_one_isolate_costs_a_few_writes_not_one_per_joiner() {
        let store = YieldingStore::new(MemoryStore::new());
        let committer = Committer::default();
        let changes: Vec<Change> = (0..20).map(publish).collect();
        let outcomes = block_on(join_all(changes.into_iter().map(|c| committer.submit(&store, "room-1", c, NOW, yield_now)).collect()));
        assert!(outcomes.iter().all(Result::is_ok));
        // every joiner's answer carries its own delete key and sees the others that were batched with it
        let keys: Vec<String> = outcomes.iter().map(|o| o.as_ref().unwrap().delete_key.clone().unwrap()).collect();
        assert_eq!(keys, (0..20).map(|n| format!("key-{n}")).collect::<Vec<_>>());
        assert_eq!(observe(&store), 20);
        assert!(store.ops().put <= 3, "20 joins cost {} writes", store.ops().put);
        assert!(committer.rooms.borrow().is_empty(), "queues are dropped when idle");
    }

    #[test]
    fn leaves_and_publishes_mix_in_one_batch() {
        let store = YieldingStore::new(MemoryStore::new());
        let committer = Committer::default();
        block_on(committer.submit(&store, "room-1", publish(1), NOW, yield_now)).unwrap();
        let Change::Publish { body, .. } = publish(1) else { unreachable!() };
        let mut leave = body.clone();
        leave.delete_key = Some("key-1".into());
        let mut wrong = body;
        wrong.delete_key = Some("nope".into());
        let outcomes = block_on(join_all(vec![
            committer.submit(&store, "room-1", publish(2), NOW, yield_now),
            committer.submit(&store, "room-1", Change::Leave { body: wrong }, NOW, yield_now),
            committer.submit(&store, "room-1", Change::Leave { body: leave }, NOW, yield_now),
        ]));
        assert!(outcomes[0].is_ok());
        assert_eq!(outcomes[1], Err(not_found()));
        assert!(outcomes[2].is_ok());
        assert_eq!(observe(&store), 1);
    }

    #[test]
    fn a_storage_failure_fails_its_batch_only_and_the_next_leader_carries_on() {
        let store = YieldingStore::new(MemoryStore::new());
        let committer = Committer::default();
        store.0.fail_next(1);
        // 0 leads alone and its read fails; 1 and 2 queued meanwhile, and 1 leads their batch
        let outcomes = block_on(join_all((0..3).map(|n| committer.submit(&store, "room-1", publish(n), NOW, yield_now)).collect()));
        assert!(matches!(outcomes[0], Err(Failure::Unavailable(_))));
        assert!(outcomes[1].is_ok() && outcomes[2].is_ok());
        assert_eq!(observe(&store), 2);
        assert_eq!(store.ops().put, 1);
    }
}

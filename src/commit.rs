//! Landing one change in a room's index under R2's limits, from a request that may be alone.
//!
//! On Cloudflare nearly every request runs in an isolate of its own, so nothing can be batched in
//! memory across requests, and R2 refuses a second write to a key within a second. So:
//!
//! 1. **Direct**: if the index's write slot is open (its `written_at` is a write gap old), apply
//!    the change and compare-and-swap it in. One read, one write: the common case.
//! 2. **Durable first**: otherwise (slot closed, race lost, rate limited, error) the change is
//!    written to a pending key of its own, written once (`layout`). From here the change cannot be
//!    lost, even if this request is cancelled: the next fold, or the client's next identified poll
//!    (`service`), lands it.
//! 3. **Fold**: wait for the slot (plus jitter), read the index; if someone folded our change
//!    already, done; else list the room's pending changes, apply them all in order, and
//!    compare-and-swap once. So N writers arriving together cost one index write per second, not N,
//!    and the first waiter to wake carries everyone.
//!
//! This repeats until the request's budget (`Pace::budget_ms`) runs out; then the request answers as
//! if its change had landed, because it will. No request waits on another request's memory, so a
//! cancelled request leaves nothing to clean up but its own pending key.

use crate::layout::{pending_time, Failure, Loaded, Storage};
use crate::platform::Platform;
use crate::room::{Change, Mode, Outcome, RoomDoc};
use crate::store::Store;

/// The room after the change, and the delete key to answer (for a publish).
#[derive(Debug, Clone)]
pub struct Committed {
    pub doc: RoomDoc,
    pub delete_key: Option<String>,
}

/// Land `change` in `room`, whose index the caller has just read as `loaded`.
pub async fn commit<S: Store, P: Platform>(storage: &Storage<'_, S, P>, room: &str, change: &Change, loaded: Loaded) -> Result<Committed, Failure> {
    let now = storage.now();
    let mut next = loaded.doc.clone();
    match next.apply(change, Mode::Direct, now) {
        Outcome::Refused(rejection) => return Err(rejection.into()),
        Outcome::Unchanged { delete_key } => return Ok(Committed { doc: loaded.doc, delete_key }),
        Outcome::Changed { delete_key } => {
            if storage.slot_open(&loaded.doc) {
                next.written_at = now;
                if storage.write_index(room, &next, &loaded).await {
                    return Ok(Committed { doc: next, delete_key });
                }
            }
        }
    }
    let own_key = storage.put_pending(room, change).await?;
    fold_until_landed(storage, room, change, &own_key, Mode::Direct, loaded).await
}

/// Fold pending changes (ours included) into the index until `change` is in it or the budget is
/// spent. `own_key` is where `change` is pending; `own_mode` is `Direct` for the change a request
/// is making now (it is not stale, whatever the room remembers), `Folded` for one found pending.
pub async fn fold_until_landed<S: Store, P: Platform>(
    storage: &Storage<'_, S, P>,
    room: &str,
    change: &Change,
    own_key: &str,
    own_mode: Mode,
    mut loaded: Loaded,
) -> Result<Committed, Failure> {
    let mut follower_wait = None;
    loop {
        let wait = follower_wait.take().unwrap_or_else(|| storage.wait_for_slot_ms(&loaded.doc));
        if storage.now() + wait > storage.deadline_ms {
            break;
        }
        storage.platform.sleep(wait).await;
        loaded = match storage.load(room).await {
            Ok(loaded) => loaded,
            Err(_) => break,
        };
        let now = storage.now();
        if loaded.doc.reflects(change, now) {
            storage.delete_folded(&[own_key.to_owned()]).await;
            return Ok(landed(loaded.doc, change));
        }
        if !storage.slot_open(&loaded.doc) {
            continue;
        }
        let Ok(mut keys) = storage.list_pending(room).await else { break };
        if !keys.iter().any(|key| key == own_key) {
            keys.push(own_key.to_owned());
            keys.sort();
        }
        if let Some(leader) = fold_leader(&keys, own_key, &loaded.doc, storage.pace.write_gap_ms(), now) {
            if leader != own_key {
                // The oldest waiter folds for everyone: check back shortly instead of racing it.
                follower_wait = Some(storage.pace.jitter_ms() * (0.5 + storage.platform.random()));
                continue;
            }
        }
        let others: Vec<String> = keys.iter().filter(|key| *key != own_key).cloned().collect();
        let mut read = others.iter().cloned().zip(storage.read_pending_all(&others).await).collect::<std::collections::HashMap<_, _>>();
        // Only what was read (or found gone) is deleted after the write; an unreadable one stays
        // pending for the next fold.
        keys.retain(|key| key == own_key || read.get(key).is_some_and(Result::is_ok));
        let mut next = loaded.doc.clone();
        let mut changed = false;
        for key in &keys {
            let pending = if key == own_key { Some(change.clone()) } else { read.remove(key).and_then(Result::ok).flatten() };
            let Some(pending) = pending else { continue };
            // A leave whose row went meanwhile is done, not a 404: only a publish keeps `own_mode`.
            let mode = match (&pending, key == own_key) {
                (Change::Publish(_), true) => own_mode,
                _ => Mode::Folded,
            };
            match next.apply(&pending, mode, now) {
                Outcome::Changed { .. } => changed = true,
                Outcome::Unchanged { .. } => {}
                Outcome::Refused(rejection) if key == own_key => {
                    storage.delete_folded(&[own_key.to_owned()]).await;
                    return Err(rejection.into());
                }
                Outcome::Refused(_) => {} // its own request learns it when it folds
            }
        }
        if !changed {
            storage.delete_folded(&keys).await;
            return Ok(landed(next, change));
        }
        next.written_at = now;
        if storage.write_index(room, &next, &loaded).await {
            storage.delete_folded(&keys).await;
            return Ok(landed(next, change));
        }
    }
    storage.platform.log(&format!("rooms/{room}: change of {} still pending at the deadline; it lands with the next fold", change.context()));
    let mut doc = loaded.doc;
    let delete_key = match doc.apply(change, Mode::Direct, storage.now()) {
        Outcome::Changed { delete_key } | Outcome::Unchanged { delete_key } => delete_key,
        Outcome::Refused(rejection) => return Err(rejection.into()),
    };
    Ok(Committed { doc, delete_key })
}

/// Who folds: the oldest pending change written since the index was (its request is waiting for
/// this slot too), unless it has waited three write gaps, when it looks abandoned and anyone folds.
/// Changes older than the index's write lost a race to it; their own requests are the leaders. So
/// one request per slot lists, reads and writes, and the others pay one list and re-read.
fn fold_leader<'k>(keys: &'k [String], own_key: &'k str, doc: &RoomDoc, write_gap_ms: f64, now_ms: f64) -> Option<&'k str> {
    let own_time = pending_time(own_key)?;
    let oldest = keys
        .iter()
        .filter_map(|key| Some((pending_time(key)?, key.as_str())))
        .filter(|(time, key)| *key == own_key || *time >= doc.written_at.min(own_time))
        .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(b.1)))?;
    (oldest.0 + 3.0 * write_gap_ms >= now_ms).then_some(oldest.1)
}

/// The answer for a change that is in `doc`: for a publish, the row's delete key.
fn landed(doc: RoomDoc, change: &Change) -> Committed {
    let delete_key = match change {
        Change::Publish(p) => Some(doc.peers.iter().find(|row| row.k == p.k).map_or_else(|| p.fresh_dk.clone(), |row| row.dk.clone())),
        Change::Leave(_) => None,
    };
    Committed { doc, delete_key }
}

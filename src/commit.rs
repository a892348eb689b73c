//! Landing one change in a room's index under R2's limits, from a request that may be alone.
//!
//! On Cloudflare nearly every request runs in an isolate of its own, so nothing can be batched in
//! memory across requests, and R2 refuses a second write to a key within a second. So:
//!
//! 1. **Direct**: if the room is quiet (its index's `written_at` is older than a write gap plus the
//!    waiters' jitter), apply the change and compare-and-swap it in. One read, one write: the
//!    common case in a quiet room.
//! 2. **Durable first**: otherwise (slot closed, race lost, rate limited, error) the change is
//!    written to a pending key of its own, written once (`layout`). From here the change cannot be
//!    lost, even if this request is cancelled: the next fold, or the client's next identified poll
//!    (`service`), lands it.
//! 3. **Fold**: wait for the slot (waiters wake in arrival order), read the index; if someone
//!    folded our change already, done; else list the room's pending changes. The request of the oldest one waiting
//!    (`leads_fold`) applies them all in order and compares-and-swaps once; the others check back.
//!    So N writers arriving together cost one index write per second, not N.
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

/// Land `change` in `room`, whose index the caller has just read as `loaded`. `mode` is `Direct`
/// for the change a request makes now (it is not stale, whatever the room remembers), `Folded`
/// for one rebuilt from a poll (a heal: it must not undo a leave or go back in time).
pub async fn commit<S: Store, P: Platform>(storage: &Storage<'_, S, P>, room: &str, change: &Change, mode: Mode, loaded: Loaded) -> Result<Committed, Failure> {
    {
        let mut next = loaded.doc.clone();
        match next.apply(change, mode, storage.now()) {
            Outcome::Refused(rejection) => return Err(rejection.into()),
            Outcome::Unchanged { delete_key } => return Ok(Committed { doc: loaded.doc, delete_key }),
            Outcome::Changed { delete_key } => {
                // Write at once only in a room quiet for a whole write gap plus the waiters'
                // jitter: otherwise a fold leader may be about to use this slot for everyone.
                if storage.room_quiet(&loaded.doc) {
                    next.written_at = storage.now();
                    if storage.write_index(room, &next, &loaded).await {
                        return Ok(Committed { doc: next, delete_key });
                    }
                }
            }
        }
    } // `next` is dropped here: nothing but `loaded` is held while the change waits
    let own_keys = storage.put_pending(room, change).await?;
    fold_until_landed(storage, room, change, &own_keys, mode, loaded).await
}

/// Fold pending changes (ours included) into the index until `change` is in it or the budget is
/// spent. `own_keys` are the pending keys this request wrote for `change` (the last one surely;
/// earlier attempts may have landed despite an error); `own_mode` as for `commit`.
pub async fn fold_until_landed<S: Store, P: Platform>(
    storage: &Storage<'_, S, P>,
    room: &str,
    change: &Change,
    own_keys: &[String],
    own_mode: Mode,
    loaded: Loaded,
) -> Result<Committed, Failure> {
    let is_own = |key: &str| own_keys.iter().any(|own| own == key);
    let own_time = own_keys.iter().filter_map(|key| pending_time(key)).fold(f64::INFINITY, f64::min);
    let own_key = own_keys.iter().min().map_or("", String::as_str);
    let mut follower_wait = None;
    let mut written_at = loaded.doc.written_at;
    // The latest read, kept only for the answer at the deadline: a waiting request holds no
    // document while it sleeps (hundreds may wait in one isolate, which has 128 MB).
    let mut latest = Some(loaded);
    loop {
        let wait = follower_wait.take().unwrap_or_else(|| storage.wait_for_slot_ms(written_at, own_key));
        if storage.now() + wait > storage.deadline_ms {
            break;
        }
        latest = None;
        storage.platform.sleep(wait).await;
        let loaded = match storage.load(room).await {
            Ok(loaded) => loaded,
            Err(_) => break,
        };
        written_at = loaded.doc.written_at;
        let now = storage.now();
        if loaded.doc.reflects(change, now) && landed_for_sure(storage, change, own_keys).await {
            storage.delete_folded(own_keys).await;
            return Ok(landed(loaded.doc, change));
        }
        if !storage.slot_open(&loaded.doc) {
            latest = Some(loaded);
            continue;
        }
        let Ok(mut keys) = storage.list_pending(room).await else {
            latest = Some(loaded);
            break;
        };
        keys.retain(|key| !is_own(key));
        if !leads_fold(&keys, own_key, written_at, storage.pace.write_gap_ms(), now) {
            // Another waiter folds for everyone: check back shortly instead of racing it.
            follower_wait = Some(storage.pace.jitter_ms() * (0.5 + storage.platform.random()));
            latest = Some(loaded);
            continue;
        }
        let results = storage.read_pending_all(&keys).await;
        let mut next = loaded.doc.clone();
        let mut changed = false;
        // Only what was read (or found gone) is deleted after the write; an unreadable one stays
        // pending for the next fold. Ours goes in at its place in time order.
        let mut folded: Vec<String> = own_keys.to_vec();
        let mut ordered: Vec<(f64, Option<Change>, bool)> = vec![(own_time, Some(change.clone()), true)];
        for (key, result) in keys.iter().zip(results) {
            if let Ok(pending) = result {
                folded.push(key.clone());
                ordered.push((pending_time(key).unwrap_or(0.0), pending, false));
            }
        }
        // Time order; at the same millisecond a leave goes after a publish (a leave that raced its
        // own pending publish must not be undone by it).
        let is_leave = |change: &Option<Change>| matches!(change, Some(Change::Leave(_)));
        ordered.sort_by(|a, b| a.0.total_cmp(&b.0).then(is_leave(&a.1).cmp(&is_leave(&b.1))));
        for (_, pending, own) in ordered {
            let Some(pending) = pending else { continue };
            // A leave whose row went meanwhile is done, not a 404: only a publish keeps `own_mode`.
            let mode = match (&pending, own) {
                (Change::Publish(_), true) => own_mode,
                _ => Mode::Folded,
            };
            match next.apply(&pending, mode, now) {
                Outcome::Changed { .. } => changed = true,
                Outcome::Unchanged { .. } => {}
                Outcome::Refused(rejection) if own => {
                    storage.delete_folded(own_keys).await;
                    return Err(rejection.into());
                }
                Outcome::Refused(_) => {} // its own request learns it when it folds
            }
        }
        if !changed {
            storage.delete_folded(&folded).await;
            return Ok(landed(next, change));
        }
        next.written_at = storage.now();
        if storage.write_index(room, &next, &loaded).await {
            storage.delete_folded(&folded).await;
            return Ok(landed(next, change));
        }
        latest = Some(loaded);
    }
    // Not logged: under contention this is expected, and the change is durable (it lands with the
    // next fold, or the client's next identified poll).
    let mut doc = match latest {
        Some(loaded) => loaded.doc,
        None => storage.load(room).await.map(|loaded| loaded.doc).unwrap_or_default(),
    };
    let delete_key = match doc.apply(change, own_mode, storage.now()) {
        Outcome::Changed { delete_key } | Outcome::Unchanged { delete_key } => delete_key,
        Outcome::Refused(rejection) => return Err(rejection.into()),
    };
    Ok(Committed { doc, delete_key })
}

/// Whether a change the index reflects is really done. For a publish, yes. For a leave, "no row
/// matches" is also what it looks like while the row's own publish is still pending; so a leave is
/// done only once its pending key is gone (a fold applied it, in order, after that publish).
async fn landed_for_sure<S: Store, P: Platform>(storage: &Storage<'_, S, P>, change: &Change, own_keys: &[String]) -> bool {
    match change {
        Change::Publish(_) => true,
        Change::Leave(_) => match own_keys.last() {
            Some(key) => matches!(storage.read_pending(key).await, Ok(None)),
            None => true,
        },
    }
}

/// Whether this request folds: the one whose pending key is the oldest (keys sort by write time,
/// then a random nonce, so every waiter, seeing the same list and index, picks the same one; ties
/// in time cannot make two leaders). Its request may be gone (cancelled, or out of budget): then the
/// slot stays open with nobody folding, and for every two write gaps of that, one more of the
/// oldest is passed over. So one request per slot reads and writes; the others pay one list and
/// re-read, however far behind the folds are.
fn leads_fold(others: &[String], own_key: &str, written_at: f64, write_gap_ms: f64, now_ms: f64) -> bool {
    let mut keys: Vec<&str> = others.iter().map(String::as_str).chain(std::iter::once(own_key)).collect();
    keys.sort_unstable();
    let idle = now_ms - written_at - write_gap_ms; // how long the slot has been open
    let passed_over = if idle > 2.0 * write_gap_ms { ((idle - 2.0 * write_gap_ms) / (2.0 * write_gap_ms)) as usize + 1 } else { 0 };
    keys[passed_over.min(keys.len() - 1)] == own_key
}

/// The answer for a change that is in `doc`: for a publish, the row's delete key.
fn landed(doc: RoomDoc, change: &Change) -> Committed {
    let delete_key = match change {
        Change::Publish(p) => Some(doc.peers.iter().find(|row| row.k == p.k).map_or_else(|| p.fresh_dk.clone(), |row| row.dk.clone())),
        Change::Leave(_) => None,
    };
    Committed { doc, delete_key }
}

#[cfg(test)]
mod tests {
    use super::leads_fold;

    const GAP: f64 = 1100.0;

    fn key(ms: u64, nonce: &str) -> String {
        format!("rooms/r/pending/{ms:015}-{nonce}/ctx")
    }

    #[test]
    fn the_oldest_waiter_leads_unless_the_slot_stays_open_without_a_fold() {
        let others = [key(1_000, "a"), key(3_000, "a")];
        let own = key(2_000, "a");
        let leads = |now: f64| leads_fold(&others, &own, 9_000.0, GAP, now);
        // a fold just happened: the oldest leads, however old its change is
        assert!(!leads(9_000.0 + GAP));
        // nobody folded for three gaps after the slot opened: the oldest is passed over, ours is next
        assert!(leads(9_000.0 + 4.0 * GAP));
        // and then the next after ours; never past the newest
        assert!(!leads(9_000.0 + 6.0 * GAP));
        assert!(!leads(9_000.0 + 60.0 * GAP));
        assert!(leads_fold(&[], &own, 0.0, GAP, 9_000.0), "alone, one leads itself");
        // two changes written in the same millisecond: exactly one of them leads
        let (x, y) = (key(5_000, "nonce-x"), key(5_000, "nonce-y"));
        let x_leads = leads_fold(std::slice::from_ref(&y), &x, 9_000.0, GAP, 9_000.0 + GAP);
        let y_leads = leads_fold(std::slice::from_ref(&x), &y, 9_000.0, GAP, 9_000.0 + GAP);
        assert!(x_leads != y_leads);
    }
}

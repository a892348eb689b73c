//! A room's state as one document, and the pure rules that change it.
//!
//! The reference keeps one R2 object per peer slot and picks slots by reading a shared counter,
//! so simultaneous joiners pick the same slot and overwrite each other. Here the whole room is one
//! document (`RoomDoc`) that storage replaces only with a compare-and-swap (`commit`), so every
//! change is applied to the latest state or retried. These functions are pure: they take the
//! document, a change and the clock, and say what the new document is.
//!
//! The document is laid out for cheap polls: each row keeps the peer data (`d`) and every
//! handshake package as raw JSON text, with the package's target beside it, so a poll parses the
//! row structure and copies bytes; it never builds a value tree of other peers' packages.
//!
//! Bounds, so that no one client can deny a room to the others: a package is at most
//! `protocol::MAX_PACKAGE_BYTES`, a row keeps at most one package per target and only for sessions
//! that are in the room, a room holds at most `MAX_ROWS` rows, and when the document would pass
//! `MAX_ROOM_BYTES` the packages of the biggest rows are shed first, the publisher's included (every
//! publish still lands its row: a hog loses its own packages first). Peer data itself is capped in
//! `protocol`, so rows alone cannot fill a room; the one thing a client can still exhaust is
//! `MAX_ROWS`, by inventing contexts: there is no client identity to bound it by.

use crate::protocol::Rejection;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Number;

/// The longest a row may live without a heartbeat, whatever the client asks (`x` is capped).
pub const MAX_ROW_LIFETIME_MS: f64 = 15.0 * 60.0 * 1000.0;
/// Peers in one room. p2pcf builds a full mesh; past ~100 peers a browser cannot hold the
/// connections anyway.
pub const MAX_ROWS: usize = 128;
/// The stored document's size past which packages are shed (see the module doc). A steady 100-peer
/// room is ~35 KiB; a newcomer's handshake with 99 peers adds ~120 KiB.
pub const MAX_ROOM_BYTES: usize = 1024 * 1024;
/// How long a departure is remembered, so that a stale change of the departed context found later
/// (an unfolded pending change) cannot bring its row back.
pub const DEPARTURE_MEMORY_MS: f64 = MAX_ROW_LIFETIME_MS;
const MAX_DEPARTURES: usize = 256;

/// The stored document: one row per context id, in join order.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RoomDoc {
    #[serde(default)]
    pub peers: Vec<PeerRow>,
    /// Worker-clock time (ms) of the write that stored this version; 0 for a room never written.
    /// The next write waits until `written_at + Pace::write_gap_ms()`.
    #[serde(default)]
    pub written_at: f64,
    /// Recent leaves.
    #[serde(default)]
    pub left: Vec<Departure>,
}

/// One peer as stored. `d` and `t` are what other peers see; the rest is private.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerRow {
    /// Context id (`k`): one row per browser tab, stable across reloads.
    pub k: String,
    /// Session id (`d[0]`).
    pub s: String,
    /// The six peer-data values, as JSON text.
    pub d: Box<RawValue>,
    /// Data timestamp (`t`).
    pub t: Number,
    /// Worker-clock time (ms) after which the row is dead.
    pub exp: f64,
    /// Worker-clock time (ms) the row was last written.
    #[serde(default)]
    pub at: f64,
    /// Delete key handed to this context on publish.
    pub dk: String,
    /// Handshake packages.
    #[serde(default)]
    pub p: Vec<Package>,
}

/// A handshake package: its target session and its JSON text (stored as `[target, package]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Package(pub String, pub Box<RawValue>);

impl Package {
    pub fn target(&self) -> &str {
        &self.0
    }

    fn stored_bytes(&self) -> usize {
        self.0.len() + self.1.get().len() + 6
    }
}

/// A context that left, and the data timestamp it left with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Departure {
    pub k: String,
    pub t: f64,
    /// Worker-clock time of the leave.
    pub at: f64,
}

/// A change to a room, as a request asks for it and as a pending object stores it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")] // externally tagged: raw JSON values cannot go through serde's buffering
pub enum Change {
    Publish(Publish),
    Leave(Leave),
}

/// A publish (`d` and `p`), or a row healed from an identified poll.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Publish {
    pub k: String,
    pub s: String,
    pub d: Box<RawValue>,
    pub t: Number,
    /// Requested lifetime (`x`), ms.
    pub x: f64,
    pub p: Vec<Package>,
    /// The delete key to hand out if the context has no row yet.
    pub fresh_dk: String,
}

/// A leave: remove the row whose context, delete key and (if given) session match.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Leave {
    pub k: String,
    pub s: Option<String>,
    pub dk: String,
    /// The leave's data timestamp, if it carried one.
    pub t: Option<f64>,
}

impl Change {
    pub fn context(&self) -> &str {
        match self {
            Change::Publish(p) => &p.k,
            Change::Leave(l) => &l.k,
        }
    }
}

/// How changes are applied. A request's own change is `Direct` (as the reference: a publish whose
/// timestamp differs replaces the row). Changes found in pending objects are `Folded`: they may be
/// stale, so one older than the stored row, or than the context's departure, is skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Direct,
    Folded,
}

/// What applying a change did.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The document changed and must be written; the delete key to answer, if any.
    Changed { delete_key: Option<String> },
    /// The document already says this: nothing to write.
    Unchanged { delete_key: Option<String> },
    /// The change is refused (4xx) and was not applied.
    Refused(Rejection),
}

/// What a caller gets back: `ps` rows and `pk` packages, as JSON text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct View {
    pub peers: Vec<String>,
    pub packages: Vec<String>,
}

pub fn not_found() -> Rejection {
    Rejection { status: 404, message: "No delete key".into() }
}

fn room_full() -> Rejection {
    Rejection { status: 413, message: format!("Room is full: a room holds at most {MAX_ROWS} peers") }
}

fn too_much_data() -> Rejection {
    Rejection { status: 413, message: "Room is full: too much handshake data is stored in it, try again shortly".into() }
}

impl PeerRow {
    fn is_live(&self, now_ms: f64) -> bool {
        now_ms < self.exp
    }

    /// Whether the row has lived three quarters of its lifetime: a p2pcf client sends its heartbeat
    /// at 90 s of 120 s, so a row this old with a newer `t` on its polls lost that heartbeat.
    pub fn is_due(&self, now_ms: f64) -> bool {
        now_ms >= self.at + 0.75 * (self.exp - self.at)
    }

    /// The `ps` row: the six values plus the data timestamp.
    fn public_row(&self) -> String {
        let d = self.d.get().trim_end();
        let open = d.strip_suffix(']').unwrap_or(d);
        format!("{open},{}]", self.t)
    }

    fn stored_bytes(&self) -> usize {
        self.k.len() + self.s.len() + self.d.get().len() + self.dk.len() + 80 + self.package_bytes()
    }

    fn package_bytes(&self) -> usize {
        self.p.iter().map(Package::stored_bytes).sum()
    }
}

fn same_number(a: &Number, b: &Number) -> bool {
    a.as_f64() == b.as_f64()
}

fn older(a: &Number, b: &Number) -> bool {
    matches!((a.as_f64(), b.as_f64()), (Some(a), Some(b)) if a < b)
}

impl RoomDoc {
    /// Parse a stored document, or one stored by the previous version of this worker (rows with `d`
    /// and `p` as plain arrays), so a deploy over live rooms keeps them.
    pub fn from_json(bytes: &[u8]) -> Result<RoomDoc, serde_json::Error> {
        serde_json::from_slice(bytes).or_else(|err| LegacyDoc::parse(bytes).ok_or(err))
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a room document always serializes")
    }

    fn live_row(&self, context: &str, now_ms: f64) -> Option<&PeerRow> {
        self.peers.iter().find(|row| row.k == context && row.is_live(now_ms))
    }

    /// The live row of `context`, for answers and checks.
    pub fn row(&self, context: &str, now_ms: f64) -> Option<&PeerRow> {
        self.live_row(context, now_ms)
    }

    /// Whether `change` is already reflected (or superseded) here: a live row with this data
    /// timestamp or a newer one; for a leave, no row left to remove.
    pub fn reflects(&self, change: &Change, now_ms: f64) -> bool {
        match change {
            Change::Publish(p) => self.live_row(&p.k, now_ms).is_some_and(|row| !older(&row.t, &p.t)),
            Change::Leave(l) => !self.peers.iter().any(|row| leave_matches(row, l)),
        }
    }

    /// Apply `change` at `now_ms`. A `Changed` outcome leaves the document pruned and within its
    /// bounds; any other leaves it as it was.
    pub fn apply(&mut self, change: &Change, mode: Mode, now_ms: f64) -> Outcome {
        // each prunes when it changes the room (a publish must, before it checks the byte cap)
        match change {
            Change::Publish(p) => self.publish(p, mode, now_ms),
            Change::Leave(l) => self.leave(l, mode, now_ms),
        }
    }

    fn publish(&mut self, p: &Publish, mode: Mode, now_ms: f64) -> Outcome {
        if let Some(row) = self.live_row(&p.k, now_ms) {
            let stale = mode == Mode::Folded && older(&p.t, &row.t);
            if same_number(&row.t, &p.t) || stale {
                return Outcome::Unchanged { delete_key: Some(row.dk.clone()) };
            }
        }
        if mode == Mode::Folded {
            let departed = self.left.iter().any(|gone| gone.k == p.k && p.t.as_f64().is_some_and(|t| t <= gone.t));
            if departed {
                return Outcome::Unchanged { delete_key: None };
            }
        }
        let existing = self.peers.iter().position(|row| row.k == p.k);
        let live_others = self.peers.iter().filter(|row| row.k != p.k && row.is_live(now_ms)).count();
        if existing.is_none_or(|i| !self.peers[i].is_live(now_ms)) && live_others >= MAX_ROWS {
            return Outcome::Refused(room_full());
        }
        let delete_key = match existing {
            Some(i) => self.peers[i].dk.clone(),
            None => p.fresh_dk.clone(),
        };
        // Only a room at its byte cap (rare) needs the way back: keep it cheap for the others.
        let incoming = p.d.get().len() + p.p.iter().map(Package::stored_bytes).sum::<usize>() + 256;
        let before = if self.stored_bytes() + incoming > MAX_ROOM_BYTES { Some(self.clone()) } else { None };
        let row = PeerRow {
            k: p.k.clone(),
            s: p.s.clone(),
            d: p.d.clone(),
            t: p.t.clone(),
            exp: now_ms + p.x.min(MAX_ROW_LIFETIME_MS),
            at: now_ms,
            dk: delete_key.clone(),
            p: one_per_target(&p.p),
        };
        match existing {
            Some(i) => self.peers[i] = row,
            None => self.peers.push(row),
        }
        self.prune(now_ms);
        match self.shedding_plan() {
            Some(shed) => {
                for i in shed {
                    self.peers[i].p.clear();
                }
                Outcome::Changed { delete_key: Some(delete_key) }
            }
            None => {
                if let Some(before) = before {
                    *self = before;
                }
                Outcome::Refused(too_much_data())
            }
        }
    }

    fn leave(&mut self, l: &Leave, mode: Mode, now_ms: f64) -> Outcome {
        let before = self.peers.len();
        self.peers.retain(|row| !leave_matches(row, l));
        if self.peers.len() == before {
            return match mode {
                Mode::Direct => Outcome::Refused(not_found()),
                Mode::Folded => Outcome::Unchanged { delete_key: None },
            };
        }
        if let Some(t) = l.t {
            self.left.push(Departure { k: l.k.clone(), t, at: now_ms });
        }
        self.prune(now_ms);
        Outcome::Changed { delete_key: None }
    }

    /// Drop dead rows, packages addressed to sessions that are not in the room (or to their own
    /// sender), and old departures. Expiry therefore costs no storage operation of its own.
    pub fn prune(&mut self, now_ms: f64) {
        self.peers.retain(|row| row.is_live(now_ms));
        let live: std::collections::HashSet<String> = self.peers.iter().map(|row| row.s.clone()).collect();
        for row in &mut self.peers {
            let own = row.s.clone();
            row.p.retain(|package| package.target() != own && live.contains(package.target()));
        }
        self.left.retain(|gone| now_ms - gone.at < DEPARTURE_MEMORY_MS);
        if self.left.len() > MAX_DEPARTURES {
            let excess = self.left.len() - MAX_DEPARTURES;
            self.left.drain(..excess);
        }
    }

    fn stored_bytes(&self) -> usize {
        self.peers.iter().map(PeerRow::stored_bytes).sum::<usize>() + 64
    }

    /// Which rows' packages to shed to bring the document under `MAX_ROOM_BYTES`: the biggest
    /// first, the publisher's own included, so every row keeps its place and a hog loses its own
    /// packages before anyone else's. `None` if rows alone overflow (they cannot: peer data is
    /// capped by `protocol`, so `MAX_ROWS` rows take ~256 KiB at most); nothing is changed here.
    fn shedding_plan(&self) -> Option<Vec<usize>> {
        let mut total = self.stored_bytes();
        let mut biggest: Vec<(usize, usize)> = self.peers.iter().enumerate().filter(|(_, row)| !row.p.is_empty()).map(|(i, row)| (row.package_bytes(), i)).collect();
        biggest.sort_unstable_by(|a, b| b.cmp(a));
        let mut shed = Vec::new();
        for (bytes, i) in biggest {
            if total <= MAX_ROOM_BYTES {
                break;
            }
            shed.push(i);
            total -= bytes;
        }
        (total <= MAX_ROOM_BYTES).then_some(shed)
    }

    /// What a caller sees: every other live peer, and the packages addressed to its session.
    pub fn view(&self, caller_context: Option<&str>, caller_session: Option<&str>, now_ms: f64) -> View {
        let mut view = View::default();
        for row in self.peers.iter().filter(|row| row.is_live(now_ms)) {
            if caller_context == Some(row.k.as_str()) {
                continue;
            }
            view.peers.push(row.public_row());
            if let Some(session) = caller_session {
                let addressed = row.p.iter().filter(|package| package.target() == session);
                view.packages.extend(addressed.map(|package| package.1.get().to_owned()));
            }
        }
        view
    }
}

/// The document as the previous version of this worker stored it.
#[derive(Deserialize)]
struct LegacyDoc {
    peers: Vec<LegacyRow>,
}

#[derive(Deserialize)]
struct LegacyRow {
    k: String,
    d: Vec<serde_json::Value>,
    t: Number,
    exp: f64,
    dk: String,
    #[serde(default)]
    p: Vec<serde_json::Value>,
}

impl LegacyDoc {
    fn parse(bytes: &[u8]) -> Option<RoomDoc> {
        let legacy: LegacyDoc = serde_json::from_slice(bytes).ok()?;
        let peers = legacy
            .peers
            .into_iter()
            .map(|row| {
                let s = row.d.first()?.as_str()?.to_owned();
                let p = row.p.iter().filter_map(|package| Some(Package(package.get(0)?.as_str()?.to_owned(), serde_json::value::to_raw_value(package).ok()?))).collect();
                Some(PeerRow { k: row.k, s, d: serde_json::value::to_raw_value(&row.d).ok()?, t: row.t, exp: row.exp, at: 0.0, dk: row.dk, p })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(RoomDoc { peers, written_at: 0.0, left: Vec::new() })
    }
}

fn leave_matches(row: &PeerRow, l: &Leave) -> bool {
    row.k == l.k && row.dk == l.dk && l.s.as_deref().is_none_or(|s| row.s == s)
}

/// A client keeps one package per remote peer; keep the last one per target.
fn one_per_target(packages: &[Package]) -> Vec<Package> {
    let mut kept: Vec<Package> = Vec::with_capacity(packages.len());
    for package in packages {
        match kept.iter().position(|k| k.target() == package.target()) {
            Some(i) => kept[i] = package.clone(),
            None => kept.push(package.clone()),
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: f64 = 1_700_000_000_000.0;

    fn raw(value: serde_json::Value) -> Box<RawValue> {
        serde_json::value::to_raw_value(&value).unwrap()
    }

    fn package(to: &str, from: &str) -> Package {
        Package(to.into(), raw(json!([to, from, "ufrag", "pwd", null, null, null, NOW, []])))
    }

    fn publish(context: &str, session: &str, t: f64, packages: Vec<Package>) -> Change {
        Change::Publish(Publish {
            k: context.into(),
            s: session.into(),
            d: raw(json!([session, "client", false, "fp", NOW, []])),
            t: Number::from_f64(t).unwrap(),
            x: 120_000.0,
            p: packages,
            fresh_dk: format!("key-{context}"),
        })
    }

    fn leave(context: &str, session: &str, dk: &str, t: f64) -> Change {
        Change::Leave(Leave { k: context.into(), s: Some(session.into()), dk: dk.into(), t: Some(t) })
    }

    fn sessions(view: &View) -> Vec<String> {
        view.peers.iter().map(|row| serde_json::from_str::<serde_json::Value>(row).unwrap()[0].as_str().unwrap().to_string()).collect()
    }

    fn room_of(changes: &[Change]) -> RoomDoc {
        let mut room = RoomDoc::default();
        for change in changes {
            room.apply(change, Mode::Direct, NOW);
        }
        room
    }

    #[test]
    fn peers_see_each_other_but_not_themselves_with_the_timestamp_appended() {
        let room = room_of(&[publish("ctx-a", "sess-a", NOW, vec![]), publish("ctx-b", "sess-b", NOW + 1.0, vec![])]);
        assert_eq!(sessions(&room.view(Some("ctx-a"), Some("sess-a"), NOW)), ["sess-b"]);
        assert_eq!(sessions(&room.view(Some("ctx-b"), Some("sess-b"), NOW)), ["sess-a"]);
        let row: serde_json::Value = serde_json::from_str(&room.view(Some("ctx-a"), None, NOW).peers[0]).unwrap();
        assert_eq!(row, json!(["sess-b", "client", false, "fp", NOW, [], NOW + 1.0]));
    }

    #[test]
    fn packages_reach_only_their_target_and_only_live_targets_are_kept() {
        let room = room_of(&[
            publish("ctx-b", "sess-b", NOW, vec![]),
            publish("ctx-c", "sess-c", NOW, vec![]),
            publish("ctx-a", "sess-a", NOW, vec![package("sess-b", "sess-a"), package("sess-c", "sess-a"), package("sess-ghost", "sess-a"), package("sess-a", "sess-a")]),
        ]);
        let for_b = room.view(Some("ctx-b"), Some("sess-b"), NOW).packages;
        assert_eq!(for_b.len(), 1);
        assert!(for_b[0].starts_with(r#"["sess-b","sess-a""#));
        assert_eq!(room.view(Some("ctx-c"), Some("sess-c"), NOW).packages.len(), 1);
        assert_eq!(room.peers[2].p.len(), 2, "packages to absent sessions or to oneself are not stored");
    }

    #[test]
    fn republishing_keeps_the_slot_and_the_delete_key() {
        let mut room = RoomDoc::default();
        let first = publish("ctx-a", "sess-a", NOW, vec![]);
        assert_eq!(room.apply(&first, Mode::Direct, NOW), Outcome::Changed { delete_key: Some("key-ctx-a".into()) });
        assert_eq!(room.apply(&first, Mode::Direct, NOW), Outcome::Unchanged { delete_key: Some("key-ctx-a".into()) });
        let mut reload = publish("ctx-a", "sess-a2", NOW + 5.0, vec![]);
        if let Change::Publish(p) = &mut reload {
            p.fresh_dk = "other".into();
        }
        assert_eq!(room.apply(&reload, Mode::Direct, NOW), Outcome::Changed { delete_key: Some("key-ctx-a".into()) });
        assert_eq!(room.peers.len(), 1);
        assert_eq!(room.peers[0].s, "sess-a2");
    }

    #[test]
    fn folded_changes_never_go_back_in_time() {
        let mut room = room_of(&[publish("ctx-a", "sess-a", NOW + 10.0, vec![])]);
        // an older pending publish of the same context is skipped when folded, replaces when direct
        let old = publish("ctx-a", "sess-a", NOW, vec![]);
        assert!(matches!(room.clone().apply(&old, Mode::Folded, NOW), Outcome::Unchanged { .. }));
        assert!(room.reflects(&old, NOW));
        assert!(matches!(room.clone().apply(&old, Mode::Direct, NOW), Outcome::Changed { .. }));
        // a leave is remembered: a stale publish of the departed context cannot resurrect it
        assert!(matches!(room.apply(&leave("ctx-a", "sess-a", "key-ctx-a", NOW + 20.0), Mode::Direct, NOW), Outcome::Changed { .. }));
        assert!(matches!(room.apply(&publish("ctx-a", "sess-a", NOW + 15.0, vec![]), Mode::Folded, NOW), Outcome::Unchanged { .. }));
        assert!(room.peers.is_empty());
        // a reload after the leave (a later timestamp) comes back
        assert!(matches!(room.apply(&publish("ctx-a", "sess-a3", NOW + 30.0, vec![]), Mode::Folded, NOW), Outcome::Changed { .. }));
        // departures are forgotten after a while
        room.prune(NOW + DEPARTURE_MEMORY_MS + 1.0);
        assert!(room.left.is_empty());
    }

    #[test]
    fn dead_rows_vanish_from_views_at_once_and_from_storage_on_the_next_write() {
        let mut room = room_of(&[publish("ctx-a", "sess-a", NOW, vec![])]);
        room.apply(&publish("ctx-b", "sess-b", NOW + 60_000.0, vec![package("sess-a", "sess-b")]), Mode::Direct, NOW + 60_000.0);
        let later = NOW + 121_000.0;
        assert!(room.view(Some("ctx-b"), Some("sess-b"), later).peers.is_empty());
        assert_eq!(room.peers.len(), 2);
        room.apply(&publish("ctx-c", "sess-c", later, vec![]), Mode::Direct, later);
        assert_eq!(room.peers.iter().map(|r| r.k.as_str()).collect::<Vec<_>>(), ["ctx-b", "ctx-c"]);
        assert!(room.peers[0].p.is_empty(), "b's package for the departed a went with it");
    }

    #[test]
    fn expiry_is_capped_at_fifteen_minutes() {
        let mut change = publish("ctx-a", "sess-a", NOW, vec![]);
        if let Change::Publish(p) = &mut change {
            p.x = 24.0 * 3600.0 * 1000.0;
        }
        let room = room_of(&[change]);
        assert_eq!(room.peers[0].exp, NOW + MAX_ROW_LIFETIME_MS);
    }

    #[test]
    fn leaving_needs_the_matching_key_and_session() {
        let mut room = room_of(&[publish("ctx-a", "sess-a", NOW, vec![])]);
        for wrong in [leave("ctx-a", "sess-a", "wrong", NOW), leave("ctx-a", "other", "key-ctx-a", NOW), leave("ctx-b", "sess-a", "key-ctx-a", NOW)] {
            assert_eq!(room.apply(&wrong, Mode::Direct, NOW), Outcome::Refused(not_found()));
            assert_eq!(room.apply(&wrong, Mode::Folded, NOW), Outcome::Unchanged { delete_key: None });
        }
        let right = leave("ctx-a", "sess-a", "key-ctx-a", NOW);
        assert!(!room.reflects(&right, NOW));
        assert_eq!(room.apply(&right, Mode::Direct, NOW), Outcome::Changed { delete_key: None });
        assert!(room.peers.is_empty() && room.reflects(&right, NOW));
    }

    #[test]
    fn a_room_holds_at_most_max_rows_peers() {
        let mut room = RoomDoc::default();
        for n in 0..MAX_ROWS {
            assert!(matches!(room.apply(&publish(&format!("c{n}"), &format!("s{n}"), NOW, vec![]), Mode::Direct, NOW), Outcome::Changed { .. }));
        }
        assert_eq!(room.apply(&publish("late", "late", NOW, vec![]), Mode::Direct, NOW), Outcome::Refused(room_full()));
        // members still heartbeat
        assert!(matches!(room.apply(&publish("c0", "s0", NOW + 1.0, vec![]), Mode::Direct, NOW), Outcome::Changed { .. }));
    }

    /// 40 rows; ten of them (hogs) store a 3 KiB package for every other session, one by one, with
    /// `check` called after each of those publishes.
    fn hogged_room(mut check: impl FnMut(&Outcome, &RoomDoc)) -> RoomDoc {
        let mut room = RoomDoc::default();
        for n in 0..40 {
            room.apply(&publish(&format!("c{n}"), &format!("s{n}"), NOW, vec![]), Mode::Direct, NOW);
        }
        let big = |to: &str| Package(to.into(), raw(json!([to, "x".repeat(3000)])));
        for hog in 0..10 {
            let packages: Vec<Package> = (0..40).filter(|n| *n != hog).map(|n| big(&format!("s{n}"))).collect();
            let outcome = room.apply(&publish(&format!("c{hog}"), &format!("s{hog}"), NOW + 1.0, packages), Mode::Direct, NOW);
            check(&outcome, &room);
        }
        room
    }

    #[test]
    fn a_hog_cannot_push_others_out() {
        let room_bytes = |room: &RoomDoc| room.to_json().len();
        let mut room = hogged_room(|outcome, room| {
            assert!(matches!(outcome, Outcome::Changed { .. }), "{outcome:?}");
            assert!(room_bytes(room) <= MAX_ROOM_BYTES + 4096);
        });
        assert!(room.peers.iter().all(|row| row.is_live(NOW)) && room.peers.len() == 40, "every row kept its place");
        // an ordinary peer's handshake still lands, with its packages
        let outcome = room.apply(&publish("c39", "s39", NOW + 2.0, vec![package("s38", "s39")]), Mode::Direct, NOW);
        assert!(matches!(outcome, Outcome::Changed { .. }), "{outcome:?}");
        let for_38 = room.view(Some("c38"), Some("s38"), NOW).packages;
        assert!(for_38.iter().any(|p| p.starts_with(r#"["s38","s39""#)), "{} packages", for_38.len());
    }

    #[test]
    fn dead_rows_do_not_count_against_the_byte_cap() {
        let mut room = hogged_room(|_, _| {});
        // every row is long dead: a newcomer finds an empty room, not a full one
        let later = NOW + MAX_ROW_LIFETIME_MS + 1.0;
        let outcome = room.apply(&publish("new", "new", later, vec![]), Mode::Direct, later);
        assert!(matches!(outcome, Outcome::Changed { .. }), "{outcome:?}");
        assert_eq!(room.peers.len(), 1);
    }

    #[test]
    fn one_package_per_target_the_last_wins() {
        let second = Package("sess-b".into(), raw(json!(["sess-b", "second"])));
        let room = room_of(&[publish("ctx-b", "sess-b", NOW, vec![]), publish("ctx-a", "sess-a", NOW, vec![package("sess-b", "first"), second])]);
        assert_eq!(room.view(Some("ctx-b"), Some("sess-b"), NOW).packages, vec![r#"["sess-b","second"]"#.to_string()]);
    }

    #[test]
    fn a_room_stored_by_the_previous_version_is_read_not_replaced() {
        let old = json!({"peers": [{"k": "ctx-a", "d": ["sess-a", "client", false, "fp", NOW, []], "t": NOW, "exp": NOW + 60_000.0, "dk": "key-a",
            "p": [["sess-b", "sess-a", "u", "p", null, null, null, NOW, []]]}]});
        let room = RoomDoc::from_json(old.to_string().as_bytes()).unwrap();
        assert_eq!(room.peers[0].s, "sess-a");
        assert_eq!(room.peers[0].p[0].target(), "sess-b");
        assert_eq!(room.view(Some("ctx-b"), Some("sess-b"), NOW).packages.len(), 1);
        assert!(RoomDoc::from_json(b"{not json").is_err());
    }

    #[test]
    fn the_stored_document_and_changes_round_trip() {
        let room = room_of(&[publish("ctx-b", "sess-b", NOW, vec![]), publish("ctx-a", "sess-a", NOW, vec![package("sess-b", "sess-a")])]);
        let back = RoomDoc::from_json(&room.to_json()).unwrap();
        assert_eq!(back.to_json(), room.to_json());
        let change = leave("ctx-a", "sess-a", "k", NOW);
        let json = serde_json::to_string(&change).unwrap();
        assert!(json.starts_with(r#"{"leave":"#));
        assert_eq!(serde_json::to_string(&serde_json::from_str::<Change>(&json).unwrap()).unwrap(), json);
    }
}

//! A room's state as one small document, and the rules that change it.
//!
//! The reference keeps one R2 object per peer slot and picks slots by reading a shared counter,
//! so simultaneous joiners pick the same slot and overwrite each other. Here the whole room is one
//! document (`RoomIndex`) that storage replaces only with a compare-and-swap, so every change is
//! applied to the latest state or retried. These functions are pure: they take the document and
//! the clock and say what the new document is; `service` does the I/O.

use crate::protocol::{package_target, Body, Identified};
use serde::{Deserialize, Serialize};
use serde_json::{Number, Value};

/// The longest a row may live without a heartbeat, whatever the client asks (`x` is capped).
pub const MAX_ROW_LIFETIME_MS: f64 = 15.0 * 60.0 * 1000.0;

/// The stored document: one row per context id, in join order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoomIndex {
    #[serde(default)]
    pub peers: Vec<PeerRow>,
}

/// One peer as stored. `data` and `timestamp` are what other peers see; the rest is private.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerRow {
    /// Context id (`k`): one row per browser tab, stable across reloads.
    pub k: String,
    /// The six peer-data values (`d`).
    pub d: Vec<Value>,
    /// Data timestamp (`t`).
    pub t: Number,
    /// Worker-clock time (ms) after which the row is dead.
    pub exp: f64,
    /// Delete key handed to this context on publish.
    pub dk: String,
    /// Handshake packages, each addressed to a session by its first item.
    pub p: Vec<Value>,
}

impl PeerRow {
    fn session_id(&self) -> Option<&str> {
        self.d.first().and_then(Value::as_str)
    }

    fn is_live(&self, now_ms: f64) -> bool {
        now_ms < self.exp
    }

    /// The peer-data row served in `ps`: the six values plus the data timestamp.
    fn public_row(&self) -> Value {
        let mut row = self.d.clone();
        row.push(Value::Number(self.t.clone()));
        Value::Array(row)
    }
}

/// What a caller gets back: `ps` and `pk` of the answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct View {
    pub peers: Vec<Value>,
    pub packages: Vec<Value>,
}

/// The result of applying a publish to the room.
#[derive(Debug, Clone, PartialEq)]
pub enum PublishOutcome {
    /// The stored row already has this data timestamp: nothing to write.
    Unchanged { delete_key: String },
    /// The room changed and must be written back.
    Changed { delete_key: String },
}

impl RoomIndex {
    pub fn from_json(bytes: &[u8]) -> Result<RoomIndex, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a room index always serializes")
    }

    /// Drop dead rows, and packages addressed to sessions that are no longer in the room.
    /// Called once before every write (`batch::commit`), so expiry costs no operation of its own.
    pub fn prune(&mut self, now_ms: f64) {
        self.peers.retain(|row| row.is_live(now_ms));
        let live: Vec<String> = self.peers.iter().filter_map(|row| row.session_id().map(str::to_owned)).collect();
        for row in &mut self.peers {
            row.p.retain(|package| package_target(package).is_some_and(|target| live.iter().any(|s| s == target)));
        }
    }

    /// Merge a publish (a body with `d` and `p`) into the room.
    ///
    /// A live row with the same data timestamp is left alone, as in the reference. Otherwise the
    /// context's row is replaced in place (keeping its delete key) or appended with
    /// `fresh_delete_key`.
    pub fn publish(&mut self, caller: &Identified, packages: &[Value], now_ms: f64, fresh_delete_key: impl FnOnce() -> String) -> PublishOutcome {
        let exp = now_ms + caller.expiry_ms.min(MAX_ROW_LIFETIME_MS);
        let existing = self.peers.iter().position(|row| row.k == caller.context && row.is_live(now_ms));
        if let Some(i) = existing {
            let row = &self.peers[i];
            if row.t.as_f64() == caller.timestamp.as_f64() {
                return PublishOutcome::Unchanged { delete_key: row.dk.clone() };
            }
        }
        self.peers.retain(|row| row.is_live(now_ms));
        let existing = self.peers.iter().position(|row| row.k == caller.context);
        let delete_key = match existing {
            Some(i) => self.peers[i].dk.clone(),
            None => fresh_delete_key(),
        };
        let row = PeerRow {
            k: caller.context.clone(),
            d: caller.data.values.clone(),
            t: caller.timestamp.clone(),
            exp,
            dk: delete_key.clone(),
            p: packages.to_vec(),
        };
        match existing {
            Some(i) => self.peers[i] = row,
            None => self.peers.push(row),
        }
        PublishOutcome::Changed { delete_key }
    }

    /// Remove the row of `context` if the session and delete key match. Returns whether it did.
    pub fn leave(&mut self, context: &str, session_id: Option<&str>, delete_key: &str) -> bool {
        let before = self.peers.len();
        self.peers.retain(|row| {
            let matches = row.k == context && row.dk == delete_key && session_id.is_none_or(|s| row.session_id() == Some(s));
            !matches
        });
        self.peers.len() != before
    }

    /// What `body`'s sender sees: every other live peer, and the packages addressed to its session.
    pub fn view(&self, body: &Body, now_ms: f64) -> View {
        let caller_session = body.peer.as_ref().map(|peer| peer.data.session_id.as_str());
        let mut view = View::default();
        for row in self.peers.iter().filter(|row| row.is_live(now_ms)) {
            if body.context.as_deref() == Some(row.k.as_str()) {
                continue;
            }
            view.peers.push(row.public_row());
            if let Some(session) = caller_session {
                let addressed = row.p.iter().filter(|package| package_target(package) == Some(session));
                view.packages.extend(addressed.cloned());
            }
        }
        view
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::parse_body;
    use serde_json::json;

    const NOW: f64 = 1_700_000_000_000.0;
    const DTLS: &str = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=";

    fn body(context: &str, session: &str, t: f64, packages: Value) -> Body {
        let raw = json!({
            "r": "room-1", "k": context, "t": t, "x": 120000,
            "d": [session, "client", false, DTLS, NOW, []],
            "p": packages
        });
        parse_body(raw.to_string().as_bytes(), t).unwrap()
    }

    fn publish(room: &mut RoomIndex, b: &Body, now: f64, key: &str) -> PublishOutcome {
        room.publish(b.peer.as_ref().unwrap(), b.packages.as_ref().unwrap(), now, || key.to_string())
    }

    fn sessions(view: &View) -> Vec<String> {
        view.peers.iter().map(|row| row[0].as_str().unwrap().to_string()).collect()
    }

    #[test]
    fn peers_see_each_other_but_not_themselves() {
        let mut room = RoomIndex::default();
        let a = body("ctx-a", "sess-a", NOW, json!([]));
        let b = body("ctx-b", "sess-b", NOW, json!([]));
        publish(&mut room, &a, NOW, "key-a");
        publish(&mut room, &b, NOW, "key-b");
        assert_eq!(sessions(&room.view(&a, NOW)), ["sess-b"]);
        assert_eq!(sessions(&room.view(&b, NOW)), ["sess-a"]);
        // ps rows are the six data values plus the data timestamp
        assert_eq!(room.view(&a, NOW).peers[0].as_array().unwrap().len(), 7);
    }

    #[test]
    fn packages_reach_only_their_target() {
        let mut room = RoomIndex::default();
        let a = body("ctx-a", "sess-a", NOW, json!([["sess-b", "sess-a", 1], ["sess-c", "sess-a", 2]]));
        let b = body("ctx-b", "sess-b", NOW, json!([]));
        let c = body("ctx-c", "sess-c", NOW, json!([]));
        // a client only addresses sessions it has seen in `ps`, so b and c are in the room first
        for (who, key) in [(&b, "kb"), (&c, "kc"), (&a, "ka")] {
            publish(&mut room, who, NOW, key);
        }
        assert_eq!(room.view(&b, NOW).packages, vec![json!(["sess-b", "sess-a", 1])]);
        assert_eq!(room.view(&c, NOW).packages, vec![json!(["sess-c", "sess-a", 2])]);
        assert!(room.view(&a, NOW).packages.is_empty());
    }

    #[test]
    fn republishing_keeps_the_slot_and_the_delete_key() {
        let mut room = RoomIndex::default();
        let first = body("ctx-a", "sess-a", NOW, json!([]));
        assert_eq!(publish(&mut room, &first, NOW, "key-1"), PublishOutcome::Changed { delete_key: "key-1".into() });
        let same_t = body("ctx-a", "sess-a", NOW, json!([["x", "y"]]));
        assert_eq!(publish(&mut room, &same_t, NOW, "key-2"), PublishOutcome::Unchanged { delete_key: "key-1".into() });
        let later = body("ctx-a", "sess-a2", NOW + 5.0, json!([]));
        assert_eq!(publish(&mut room, &later, NOW + 5.0, "key-3"), PublishOutcome::Changed { delete_key: "key-1".into() });
        assert_eq!(room.peers.len(), 1);
        assert_eq!(room.peers[0].d[0], json!("sess-a2"));
    }

    #[test]
    fn dead_rows_vanish_from_views_at_once_and_from_storage_on_the_next_write() {
        let mut room = RoomIndex::default();
        let a = body("ctx-a", "sess-a", NOW, json!([]));
        let b = body("ctx-b", "sess-b", NOW, json!([["sess-a", "sess-b"]]));
        publish(&mut room, &a, NOW, "ka");
        publish(&mut room, &b, NOW + 60_000.0, "kb");
        // a asked for 120 s; at 121 s it is dead to readers although still stored
        let later = NOW + 121_000.0;
        assert!(room.view(&b, later).peers.is_empty());
        assert_eq!(room.peers.len(), 2);
        let c = body("ctx-c", "sess-c", later, json!([]));
        publish(&mut room, &c, later, "kc");
        room.prune(later); // as every write does
        assert_eq!(room.peers.iter().map(|r| r.k.as_str()).collect::<Vec<_>>(), ["ctx-b", "ctx-c"]);
        // b's package for the departed a was pruned with it
        assert!(room.peers[0].p.is_empty());
    }

    #[test]
    fn packages_for_sessions_that_left_are_pruned_on_write() {
        let mut room = RoomIndex::default();
        let b = body("ctx-b", "sess-b", NOW, json!([]));
        publish(&mut room, &b, NOW, "kb");
        let a = body("ctx-a", "sess-a", NOW, json!([["sess-b", "sess-a"]]));
        publish(&mut room, &a, NOW, "ka");
        // b reloads: same context, new session; a's package for the old session is useless
        let b2 = body("ctx-b", "sess-b2", NOW + 1.0, json!([]));
        publish(&mut room, &b2, NOW + 1.0, "kb");
        room.prune(NOW + 1.0); // as every write does
        assert!(room.peers[1].p.is_empty());
    }

    #[test]
    fn expiry_is_capped_at_fifteen_minutes() {
        let mut room = RoomIndex::default();
        let mut a = body("ctx-a", "sess-a", NOW, json!([]));
        a.peer.as_mut().unwrap().expiry_ms = 24.0 * 3600.0 * 1000.0;
        publish(&mut room, &a, NOW, "ka");
        assert_eq!(room.peers[0].exp, NOW + MAX_ROW_LIFETIME_MS);
    }

    #[test]
    fn a_dead_row_with_the_same_timestamp_is_written_again() {
        let mut room = RoomIndex::default();
        let a = body("ctx-a", "sess-a", NOW, json!([]));
        publish(&mut room, &a, NOW, "ka");
        let outcome = publish(&mut room, &a, NOW + 200_000.0, "kb");
        assert_eq!(outcome, PublishOutcome::Changed { delete_key: "kb".into() });
    }

    #[test]
    fn leaving_needs_the_matching_key_and_session() {
        let mut room = RoomIndex::default();
        let a = body("ctx-a", "sess-a", NOW, json!([]));
        publish(&mut room, &a, NOW, "ka");
        assert!(!room.leave("ctx-a", Some("sess-a"), "wrong"));
        assert!(!room.leave("ctx-a", Some("other"), "ka"));
        assert!(!room.leave("ctx-b", Some("sess-a"), "ka"));
        assert!(room.leave("ctx-a", Some("sess-a"), "ka"));
        assert!(room.peers.is_empty());
    }

    #[test]
    fn the_stored_document_round_trips() {
        let mut room = RoomIndex::default();
        publish(&mut room, &body("ctx-a", "sess-a", NOW, json!([["s", 1]])), NOW, "ka");
        assert_eq!(RoomIndex::from_json(&room.to_json()).unwrap(), room);
    }
}

//! WebSocket signalling: who is connected to one Durable Object, and what each frame produces for
//! whom. Plain Rust over socket ids, so every rule is tested natively.
//!
//! One object serves one room (P2PCF-WS) or one namespace (relay, pub/sub). The object hibernates
//! between messages and loses its memory; what must survive is kept in each socket's attachment (a
//! `Member`), and `Hub::rebuild` restores the hub from those when the object wakes. Rate-limit
//! buckets are the only state kept in memory alone: an object that hibernated was idle, so a fresh
//! bucket is what it would have had anyway.
//!
//! The hub never touches a socket. Each call returns `Effect`s (send this text to that socket,
//! close that socket, store this attachment) for the Durable Object shell (`wasm::object`) to carry
//! out in order.

pub mod route;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};

/// Largest text frame a client may send, in bytes. A P2PCF handshake package is under 16 KiB and a
/// simple-peer SDP under 8 KiB; 64 KiB leaves room for any signal and stops memory abuse.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// Most sockets one object accepts. A 100-peer mesh is already ~5,000 WebRTC connections; past
/// 256, a room is not a signalling room.
pub const MAX_SOCKETS: usize = 256;
/// Sustained frames per second one socket may send, and the burst it may save up. A newcomer in a
/// 100-peer P2PCF-WS room sends one signal per peer at once, well under the burst.
pub const FRAMES_PER_SECOND: f64 = 50.0;
pub const FRAME_BURST: f64 = 200.0;
/// Topics one pub/sub socket may hold, and the longest topic: together they keep a socket's
/// attachment (16 KiB at most) under 10 KiB.
pub const MAX_TOPICS: usize = 32;
pub const MAX_TOPIC_BYTES: usize = 256;
/// Longest room, namespace, client or peer id, in bytes.
pub const MAX_ID_BYTES: usize = 128;
/// Close code for a socket replaced by a newer one with the same id (P2PCF-WS's convention).
pub const CLOSE_REPLACED: u16 = 4000;
/// Bytes of fan-out (a frame's size times its recipients) that cost one more token: a broadcast of
/// 64 KiB to 255 peers costs ~255 tokens, so nobody can make the object copy megabytes per second.
pub const FANOUT_BYTES_PER_TOKEN: usize = 64 * 1024;

/// The three protocols, one per kind of object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// P2PCF-WS: `peers` / `peer_join` / `peer_leave` / `signal` / `broadcast`, ids from the URL.
    Room,
    /// The relay protocol: `register` / `list_peers` / `relay`.
    Relay,
    /// Topic pub/sub: `subscribe` / `unsubscribe` / `publish`.
    PubSub,
}

/// What survives hibernation about one socket: its attachment. Short field names keep it small.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// Which protocol the object speaks: an object woken by a message learns it from here.
    #[serde(rename = "k")]
    pub protocol: Protocol,
    /// The socket's id, given when it was accepted (also its tag).
    #[serde(rename = "s")]
    pub socket: String,
    /// The room client id (P2PCF-WS) or the registered peer id (relay).
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// When it joined (ms since the epoch); orders the peer list and settles duplicate ids.
    #[serde(rename = "j", default)]
    pub joined_at: f64,
    /// Pub/sub topics it is subscribed to.
    #[serde(rename = "t", default, skip_serializing_if = "Vec::is_empty")]
    pub topics: Vec<String>,
    /// The secret that came with the id (`key` in the URL or the `register` frame): only a socket
    /// with the same key may take the id over. Attachments never leave the object.
    #[serde(rename = "x", default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// Something the shell must do, in the order given.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Send { to: String, text: String },
    Close { to: String, code: u16, reason: String },
    /// Store this as the socket's attachment.
    Save { member: Member },
}

/// An incoming frame, as the shell received it.
#[derive(Debug, Clone, Copy)]
pub enum Frame<'a> {
    Text(&'a str),
    /// A binary frame and its length; no protocol here uses them.
    Binary(usize),
}

/// A token bucket for one socket's frames.
#[derive(Debug, Clone, Copy)]
struct Rate {
    tokens: f64,
    at_ms: f64,
    /// An error was sent for the current run of dropped frames (one error per run, not per frame).
    warned: bool,
}

/// Everyone connected to one object.
#[derive(Debug)]
pub struct Hub {
    protocol: Protocol,
    members: BTreeMap<String, Member>,
    rates: HashMap<String, Rate>,
}

impl Hub {
    pub fn new(protocol: Protocol) -> Self {
        Hub { protocol, members: BTreeMap::new(), rates: HashMap::new() }
    }

    /// The hub of an object that woke from hibernation, from its sockets' attachments. Two sockets
    /// holding one id (a replacement whose old socket had not finished closing) keep the later
    /// joiner; the effects close the others.
    pub fn rebuild(protocol: Protocol, members: impl IntoIterator<Item = Member>) -> (Self, Vec<Effect>) {
        let mut hub = Hub::new(protocol);
        for member in members {
            hub.members.insert(member.socket.clone(), member);
        }
        let mut latest: HashMap<String, (f64, String)> = HashMap::new();
        let mut stale = Vec::new();
        for member in hub.members.values() {
            let Some(peer) = &member.peer else { continue };
            let candidate = (member.joined_at, member.socket.clone());
            match latest.get(peer) {
                Some(kept) if (kept.0, &kept.1) >= (candidate.0, &candidate.1) => stale.push(candidate.1),
                Some(kept) => {
                    stale.push(kept.1.clone());
                    latest.insert(peer.clone(), candidate);
                }
                None => {
                    latest.insert(peer.clone(), candidate);
                }
            }
        }
        let effects = stale.iter().map(|socket| hub.evict(socket)).collect();
        (hub, effects)
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn member(&self, socket: &str) -> Option<&Member> {
        self.members.get(socket)
    }

    /// Whether one more socket may connect with this P2PCF-WS client id and key; the error is the
    /// status and text to refuse it with. An id held with a key is taken over only with that key.
    pub fn admit(&self, client_id: Option<&str>, key: Option<&str>) -> Result<(), (u16, String)> {
        if let Some(held) = client_id.and_then(|id| self.holder_of(id)) {
            if !may_take_over(held, key) {
                return Err((409, "This clientId is in use in this room (a reconnect must present the same key)".into()));
            }
            return Ok(()); // a replacement: the room does not grow
        }
        if self.members.len() >= MAX_SOCKETS {
            return Err((429, format!("This room is full: at most {MAX_SOCKETS} sockets")));
        }
        Ok(())
    }

    /// A socket was accepted. `peer` is the P2PCF-WS client id from the URL (none for the other
    /// protocols, whose peers register by message).
    /// Call `admit` first: `connect` replaces a holder of the id whatever its key.
    pub fn connect(&mut self, socket: &str, peer: Option<&str>, key: Option<&str>, now_ms: f64) -> Vec<Effect> {
        let member = Member {
            protocol: self.protocol,
            socket: socket.into(),
            peer: peer.map(Into::into),
            joined_at: now_ms,
            topics: Vec::new(),
            key: key.map(Into::into),
        };
        let mut effects = vec![Effect::Save { member: member.clone() }];
        let Some(client_id) = peer.filter(|_| self.protocol == Protocol::Room) else {
            self.members.insert(socket.into(), member);
            return effects;
        };
        let replaced = self.socket_of(client_id);
        if let Some(old) = &replaced {
            // The id stays in the room, so the others see no leave and no join.
            effects.push(self.evict(old));
        }
        let peers: Vec<&str> = self.in_join_order().filter_map(|m| m.peer.as_deref()).collect();
        effects.push(send(socket, json!({ "type": "peers", "peers": peers, "yourId": client_id })));
        if replaced.is_none() {
            let joined = json!({ "type": "peer_join", "clientId": client_id, "timestamp": now_ms });
            effects.extend(self.to_all(&joined, None));
        }
        self.members.insert(socket.into(), member);
        effects
    }

    /// A socket closed or failed. Closing a socket the hub no longer holds (already replaced) is
    /// a no-op.
    pub fn disconnect(&mut self, socket: &str, now_ms: f64) -> Vec<Effect> {
        self.rates.remove(socket);
        let Some(member) = self.members.remove(socket) else { return Vec::new() };
        match (self.protocol, member.peer) {
            (Protocol::Room, Some(client_id)) => {
                let left = json!({ "type": "peer_leave", "clientId": client_id, "timestamp": now_ms });
                self.to_all(&left, None)
            }
            _ => Vec::new(),
        }
    }

    /// A frame arrived from `socket`.
    pub fn receive(&mut self, socket: &str, frame: Frame<'_>, now_ms: f64) -> Vec<Effect> {
        if !self.members.contains_key(socket) {
            return vec![Effect::Close { to: socket.into(), code: 1008, reason: "not connected to this room".into() }];
        }
        match self.take_token(socket, now_ms) {
            Ok(()) => {}
            Err(Some(error)) => return vec![error_frame(socket, &error)],
            Err(None) => return Vec::new(),
        }
        let text = match frame {
            Frame::Binary(_) => return vec![error_frame(socket, "Binary frames are not supported; send JSON text")],
            Frame::Text(text) if text.len() > MAX_FRAME_BYTES => {
                return vec![error_frame(socket, &format!("Frame too large: {} bytes, the limit is {MAX_FRAME_BYTES}", text.len()))]
            }
            Frame::Text(text) => text,
        };
        let message = match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(message)) => message,
            Ok(_) => return vec![error_frame(socket, "Expected a JSON object")],
            Err(_) => return vec![error_frame(socket, "Expected JSON")],
        };
        let Some(kind) = message.get("type").and_then(Value::as_str) else {
            return vec![error_frame(socket, "Missing \"type\"")];
        };
        let result = match self.protocol {
            Protocol::Room => self.room_frame(socket, kind, &message),
            Protocol::Relay => self.relay_frame(socket, kind, &message, now_ms),
            Protocol::PubSub => self.pubsub_frame(socket, kind, &message),
        };
        let effects = result.unwrap_or_else(|error| vec![error_frame(socket, &error)]);
        self.charge_fanout(socket, &effects);
        effects
    }

    fn room_frame(&mut self, socket: &str, kind: &str, message: &serde_json::Map<String, Value>) -> Result<Vec<Effect>, String> {
        let from = self.peer_of(socket).ok_or("Not in the room")?;
        match kind {
            "signal" => {
                let target = required_str(message, "targetId")?;
                let signal = message.get("signal").ok_or("Missing \"signal\"")?;
                let to = self.socket_of(target).ok_or_else(|| format!("Peer not in the room: {target}"))?;
                Ok(vec![send(&to, json!({ "type": "signal", "fromId": from, "signal": signal }))])
            }
            "broadcast" => {
                let data = message.get("data").ok_or("Missing \"data\"")?;
                Ok(self.to_all(&json!({ "type": "broadcast", "fromId": from, "data": data }), Some(socket)))
            }
            other => Err(format!("Unknown type: {}", clip(other))),
        }
    }

    fn relay_frame(&mut self, socket: &str, kind: &str, message: &serde_json::Map<String, Value>, now_ms: f64) -> Result<Vec<Effect>, String> {
        match kind {
            "register" => {
                let peer_id = required_str(message, "peer_id")?;
                check_id("peer_id", peer_id)?;
                let key = match message.get("key") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(key)) if is_valid_key(key) => Some(key.as_str()),
                    Some(_) => return Err(format!("\"key\" must be a string of 1 to {MAX_ID_BYTES} bytes")),
                };
                let mut effects = Vec::new();
                // Registrations live with the sockets: a peer that reconnects takes its id back
                // (with the key it registered with, if it gave one).
                if let Some(old) = self.socket_of(peer_id).filter(|old| old != socket) {
                    if !self.members.get(&old).is_some_and(|held| may_take_over(held, key)) {
                        return Err(format!("peer_id in use: {peer_id} (registering it again needs the same key)"));
                    }
                    effects.push(self.evict(&old));
                }
                let member = self.members.get_mut(socket).ok_or("Not connected")?;
                member.peer = Some(peer_id.into());
                member.key = key.map(Into::into);
                member.joined_at = now_ms; // a wake keeps the latest registration of an id
                effects.push(Effect::Save { member: member.clone() });
                effects.push(send(socket, json!({ "type": "registered", "peer_id": peer_id })));
                Ok(effects)
            }
            "list_peers" => {
                let peers: Vec<&str> = self.in_join_order().filter(|m| m.socket != socket).filter_map(|m| m.peer.as_deref()).collect();
                Ok(vec![send(socket, json!({ "type": "peers", "peers": peers }))])
            }
            "relay" => {
                let from = self.peer_of(socket).ok_or("Register first: {\"type\":\"register\",\"peer_id\":…}")?;
                let target = required_str(message, "to")?;
                let data = message.get("data").ok_or("Missing \"data\"")?;
                let to = self.socket_of(target).ok_or_else(|| format!("Peer not found: {target}"))?;
                Ok(vec![send(&to, json!({ "type": "relay", "from": from, "data": data }))])
            }
            other => Err(format!("Unknown type: {}", clip(other))),
        }
    }

    fn pubsub_frame(&mut self, socket: &str, kind: &str, message: &serde_json::Map<String, Value>) -> Result<Vec<Effect>, String> {
        let topic = required_str(message, "topic")?;
        if topic.is_empty() || topic.len() > MAX_TOPIC_BYTES {
            return Err(format!("A topic is 1 to {MAX_TOPIC_BYTES} bytes"));
        }
        match kind {
            "subscribe" | "unsubscribe" => {
                let member = self.members.get_mut(socket).ok_or("Not connected")?;
                let held = member.topics.iter().position(|t| t == topic);
                match (kind, held) {
                    ("subscribe", None) if member.topics.len() >= MAX_TOPICS => {
                        return Err(format!("Too many topics: at most {MAX_TOPICS} per socket"))
                    }
                    ("subscribe", None) => member.topics.push(topic.into()),
                    ("unsubscribe", Some(index)) => {
                        member.topics.remove(index);
                    }
                    _ => return Ok(Vec::new()),
                }
                Ok(vec![Effect::Save { member: member.clone() }])
            }
            "publish" => {
                let payload = message.get("payload").ok_or("Missing \"payload\"")?;
                let text = json!({ "topic": topic, "payload": payload }).to_string();
                let subscribers = self.members.values().filter(|m| m.topics.iter().any(|t| t == topic));
                Ok(subscribers.map(|m| Effect::Send { to: m.socket.clone(), text: text.clone() }).collect())
            }
            other => Err(format!("Unknown type: {}", clip(other))),
        }
    }

    /// Charge a socket for what its frame made the object send to others, beyond the one token
    /// the frame cost: the bucket may go below zero, and the socket waits for it to refill.
    fn charge_fanout(&mut self, socket: &str, effects: &[Effect]) {
        let bytes: usize = effects
            .iter()
            .filter_map(|e| match e {
                Effect::Send { to, text } if to != socket => Some(text.len()),
                _ => None,
            })
            .sum();
        if let Some(rate) = self.rates.get_mut(socket) {
            rate.tokens -= (bytes / FANOUT_BYTES_PER_TOKEN) as f64;
        }
    }

    /// Spend one token of `socket`'s bucket. `Err(Some(text))` drops the frame with an error
    /// (the first of a run), `Err(None)` drops it silently.
    fn take_token(&mut self, socket: &str, now_ms: f64) -> Result<(), Option<String>> {
        let rate = self.rates.entry(socket.into()).or_insert(Rate { tokens: FRAME_BURST, at_ms: now_ms, warned: false });
        let elapsed_s = ((now_ms - rate.at_ms) / 1000.0).max(0.0);
        rate.tokens = (rate.tokens + elapsed_s * FRAMES_PER_SECOND).min(FRAME_BURST);
        rate.at_ms = now_ms;
        if rate.tokens >= 1.0 {
            rate.tokens -= 1.0;
            rate.warned = false;
            return Ok(());
        }
        if rate.warned {
            return Err(None);
        }
        rate.warned = true;
        Err(Some(format!("Rate limited: at most {FRAMES_PER_SECOND} frames per second (bursts of {FRAME_BURST}); frames are dropped until then")))
    }

    fn in_join_order(&self) -> impl Iterator<Item = &Member> {
        let mut members: Vec<&Member> = self.members.values().collect();
        members.sort_by(|a, b| a.joined_at.total_cmp(&b.joined_at).then_with(|| a.socket.cmp(&b.socket)));
        members.into_iter()
    }

    fn holder_of(&self, peer: &str) -> Option<&Member> {
        self.members.values().find(|m| m.peer.as_deref() == Some(peer))
    }

    fn socket_of(&self, peer: &str) -> Option<String> {
        self.holder_of(peer).map(|m| m.socket.clone())
    }

    /// Drop a socket whose id a newer socket took, and close it.
    fn evict(&mut self, socket: &str) -> Effect {
        self.members.remove(socket);
        self.rates.remove(socket);
        Effect::Close { to: socket.into(), code: CLOSE_REPLACED, reason: "replaced by a newer connection".into() }
    }

    fn peer_of(&self, socket: &str) -> Option<String> {
        self.members.get(socket).and_then(|m| m.peer.clone())
    }

    fn to_all(&self, message: &Value, except: Option<&str>) -> Vec<Effect> {
        let text = message.to_string();
        let others = self.members.keys().filter(|s| Some(s.as_str()) != except);
        others.map(|to| Effect::Send { to: to.clone(), text: text.clone() }).collect()
    }
}

/// The close code to answer a client's close with. 1005, 1006 and 1015 describe a close that
/// carried no code, an abnormal drop and a TLS failure: they may never be sent, so those are
/// answered with a normal close.
pub fn answer_close_code(received: u16) -> u16 {
    match received {
        1000..=1003 | 1007..=1014 | 3000..=4999 => received,
        _ => 1000,
    }
}

/// Whether a socket presenting `key` may take over an id `held` by another socket: always when
/// the holder gave no key (P2PCF-WS's replace-on-duplicate), else only with the same key.
fn may_take_over(held: &Member, key: Option<&str>) -> bool {
    match held.key.as_deref() {
        None => true,
        Some(held_key) => key == Some(held_key),
    }
}

/// A key that protects an id (URL or `register` frame): 1 to `MAX_ID_BYTES` bytes.
pub fn is_valid_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= MAX_ID_BYTES
}

/// An id in a URL or a frame: 1 to `MAX_ID_BYTES` bytes, no control characters.
pub fn check_id(what: &str, id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_ID_BYTES || id.chars().any(char::is_control) {
        return Err(format!("Invalid {what}: 1 to {MAX_ID_BYTES} bytes without control characters"));
    }
    Ok(())
}

fn required_str<'a>(message: &'a serde_json::Map<String, Value>, field: &str) -> Result<&'a str, String> {
    match message.get(field) {
        Some(Value::String(value)) => Ok(value),
        Some(_) => Err(format!("\"{field}\" must be a string")),
        None => Err(format!("Missing \"{field}\"")),
    }
}

fn send(to: &str, message: Value) -> Effect {
    Effect::Send { to: to.into(), text: message.to_string() }
}

fn error_frame(to: &str, error: &str) -> Effect {
    send(to, json!({ "type": "error", "error": error }))
}

/// A client-supplied string, cut short enough to quote in an error.
fn clip(text: &str) -> String {
    text.chars().take(64).collect()
}

#[cfg(test)]
mod tests;

use super::*;
use serde_json::json;

const T0: f64 = 1_795_435_200_000.0;

/// The frames each socket was sent, parsed.
fn sent(effects: &[Effect]) -> Vec<(String, Value)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send { to, text } => Some((to.clone(), serde_json::from_str(text).unwrap())),
            _ => None,
        })
        .collect()
}

fn sent_to(effects: &[Effect], socket: &str) -> Vec<Value> {
    sent(effects).into_iter().filter(|(to, _)| to == socket).map(|(_, v)| v).collect()
}

fn closed(effects: &[Effect]) -> Vec<(String, u16)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Close { to, code, .. } => Some((to.clone(), *code)),
            _ => None,
        })
        .collect()
}

fn text(hub: &mut Hub, socket: &str, frame: Value, now: f64) -> Vec<Effect> {
    hub.receive(socket, Frame::Text(&frame.to_string()), now)
}

fn error_of(effects: &[Effect], socket: &str) -> String {
    let frames = sent_to(effects, socket);
    assert_eq!(frames.len(), 1, "one frame: {frames:?}");
    assert_eq!(frames[0]["type"], "error", "{frames:?}");
    frames[0]["error"].as_str().unwrap().to_string()
}

/// A room with sockets s1.. for clients a, b, c.., joined a second apart.
fn room(clients: &[&str]) -> Hub {
    let mut hub = Hub::new(Protocol::Room);
    for (i, client) in clients.iter().enumerate() {
        hub.connect(&format!("s{}", i + 1), Some(client), None, T0 + i as f64 * 1000.0);
    }
    hub
}

#[test]
fn a_joiner_gets_the_peers_and_everyone_else_its_join() {
    let mut hub = room(&["a", "b"]);
    let effects = hub.connect("s3", Some("c"), None, T0 + 5000.0);
    assert!(matches!(&effects[0], Effect::Save { member } if member.peer.as_deref() == Some("c") && member.socket == "s3"));
    assert_eq!(sent_to(&effects, "s3"), vec![json!({ "type": "peers", "peers": ["a", "b"], "yourId": "c" })]);
    for other in ["s1", "s2"] {
        assert_eq!(sent_to(&effects, other), vec![json!({ "type": "peer_join", "clientId": "c", "timestamp": T0 + 5000.0 })]);
    }
}

#[test]
fn a_leaver_is_announced_to_the_rest() {
    let mut hub = room(&["a", "b", "c"]);
    let effects = hub.disconnect("s2", T0 + 9000.0);
    let expected = json!({ "type": "peer_leave", "clientId": "b", "timestamp": T0 + 9000.0 });
    assert_eq!(sent(&effects), vec![("s1".into(), expected.clone()), ("s3".into(), expected)]);
    assert!(hub.disconnect("s2", T0 + 9001.0).is_empty(), "a second close of the same socket says nothing");
}

#[test]
fn a_signal_reaches_its_target_only() {
    let mut hub = room(&["a", "b", "c"]);
    let effects = text(&mut hub, "s1", json!({ "type": "signal", "targetId": "c", "signal": { "sdp": "x" } }), T0);
    assert_eq!(sent(&effects), vec![("s3".into(), json!({ "type": "signal", "fromId": "a", "signal": { "sdp": "x" } }))]);
}

#[test]
fn a_broadcast_reaches_everyone_but_its_sender() {
    let mut hub = room(&["a", "b", "c"]);
    let effects = text(&mut hub, "s2", json!({ "type": "broadcast", "data": [1, 2] }), T0);
    let expected = json!({ "type": "broadcast", "fromId": "b", "data": [1, 2] });
    assert_eq!(sent(&effects), vec![("s1".into(), expected.clone()), ("s3".into(), expected)]);
}

#[test]
fn a_second_socket_with_the_same_client_id_replaces_the_first_silently() {
    let mut hub = room(&["a", "b"]);
    let effects = hub.connect("s9", Some("a"), None, T0 + 3000.0);
    assert_eq!(closed(&effects), vec![("s1".into(), CLOSE_REPLACED)]);
    assert_eq!(sent_to(&effects, "s9"), vec![json!({ "type": "peers", "peers": ["b"], "yourId": "a" })]);
    assert!(sent_to(&effects, "s2").is_empty(), "b sees neither a leave nor a join");
    assert!(hub.disconnect("s1", T0 + 3001.0).is_empty(), "the replaced socket's close announces nothing");
    let effects = text(&mut hub, "s2", json!({ "type": "signal", "targetId": "a", "signal": 1 }), T0);
    assert_eq!(sent(&effects)[0].0, "s9", "signals go to the new socket");
}

#[test]
fn bad_frames_get_an_error_and_the_socket_stays() {
    let mut hub = room(&["a", "b"]);
    let cases: Vec<(Frame, &str)> = vec![
        (Frame::Text("not json"), "Expected JSON"),
        (Frame::Text("[1]"), "Expected a JSON object"),
        (Frame::Text("{}"), "Missing \"type\""),
        (Frame::Text(r#"{"type":"dance"}"#), "Unknown type: dance"),
        (Frame::Text(r#"{"type":"signal","signal":1}"#), "Missing \"targetId\""),
        (Frame::Text(r#"{"type":"signal","targetId":7,"signal":1}"#), "\"targetId\" must be a string"),
        (Frame::Text(r#"{"type":"signal","targetId":"b"}"#), "Missing \"signal\""),
        (Frame::Text(r#"{"type":"signal","targetId":"zed","signal":1}"#), "Peer not in the room: zed"),
        (Frame::Text(r#"{"type":"broadcast"}"#), "Missing \"data\""),
        (Frame::Binary(10), "Binary frames are not supported; send JSON text"),
    ];
    for (frame, expected) in cases {
        let effects = hub.receive("s1", frame, T0);
        assert_eq!(error_of(&effects, "s1"), expected);
        assert!(closed(&effects).is_empty());
    }
    assert_eq!(hub.len(), 2);
}

#[test]
fn frames_over_the_cap_are_refused() {
    let mut hub = room(&["a", "b"]);
    let big = json!({ "type": "broadcast", "data": "x".repeat(MAX_FRAME_BYTES) }).to_string();
    let effects = hub.receive("s1", Frame::Text(&big), T0);
    assert!(error_of(&effects, "s1").starts_with("Frame too large"));
    let fits = json!({ "type": "broadcast", "data": "x".repeat(MAX_FRAME_BYTES - 100) }).to_string();
    assert_eq!(sent(&hub.receive("s1", Frame::Text(&fits), T0)).len(), 1);
}

#[test]
fn a_flooding_socket_is_limited_with_one_error_per_run_and_recovers() {
    let mut hub = room(&["a", "b"]);
    let frame = json!({ "type": "broadcast", "data": 1 });
    for _ in 0..FRAME_BURST as usize {
        assert_eq!(sent_to(&text(&mut hub, "s1", frame.clone(), T0), "s2").len(), 1);
    }
    assert!(error_of(&text(&mut hub, "s1", frame.clone(), T0), "s1").starts_with("Rate limited"));
    assert!(text(&mut hub, "s1", frame.clone(), T0).is_empty(), "dropped silently after the first error");
    assert_eq!(sent_to(&text(&mut hub, "s2", frame.clone(), T0), "s1").len(), 1, "other sockets are not limited");
    let later = T0 + 1000.0 / FRAMES_PER_SECOND;
    assert_eq!(sent_to(&text(&mut hub, "s1", frame, later), "s2").len(), 1, "a token refilled");
}

#[test]
fn the_room_refuses_sockets_past_the_cap() {
    let mut hub = Hub::new(Protocol::Room);
    for i in 0..MAX_SOCKETS {
        assert!(hub.admit(Some(&format!("c{i}")), None).is_ok());
        hub.connect(&format!("s{i}"), Some(&format!("c{i}")), None, T0);
    }
    assert_eq!(hub.admit(Some("one more"), None).unwrap_err().0, 429);
    assert!(hub.admit(Some("c7"), None).is_ok(), "replacing an id does not grow the room");
}

#[test]
fn frames_from_a_socket_the_hub_does_not_hold_close_it() {
    let mut hub = room(&["a"]);
    let effects = text(&mut hub, "ghost", json!({ "type": "broadcast", "data": 1 }), T0);
    assert_eq!(closed(&effects), vec![("ghost".into(), 1008)]);
}

#[test]
fn relay_peers_register_list_and_relay() {
    let mut hub = Hub::new(Protocol::Relay);
    for socket in ["s1", "s2", "s3"] {
        hub.connect(socket, None, None, T0);
    }
    let effects = text(&mut hub, "s1", json!({ "type": "relay", "to": "x", "data": 1 }), T0);
    assert!(error_of(&effects, "s1").starts_with("Register first"));
    for (socket, id) in [("s1", "alice"), ("s2", "bob")] {
        let effects = text(&mut hub, socket, json!({ "type": "register", "peer_id": id }), T0);
        assert!(matches!(&effects[0], Effect::Save { member } if member.peer.as_deref() == Some(id)));
        assert_eq!(sent_to(&effects, socket), vec![json!({ "type": "registered", "peer_id": id })]);
    }
    assert_eq!(sent_to(&text(&mut hub, "s1", json!({ "type": "list_peers" }), T0), "s1"), vec![json!({ "type": "peers", "peers": ["bob"] })]);
    let effects = text(&mut hub, "s1", json!({ "type": "relay", "to": "bob", "data": { "offer": 1 } }), T0);
    assert_eq!(sent(&effects), vec![("s2".into(), json!({ "type": "relay", "from": "alice", "data": { "offer": 1 } }))]);
    assert_eq!(error_of(&text(&mut hub, "s1", json!({ "type": "relay", "to": "carol", "data": 1 }), T0), "s1"), "Peer not found: carol");
    assert_eq!(error_of(&text(&mut hub, "s1", json!({ "type": "register", "peer_id": "" }), T0), "s1").split(':').next(), Some("Invalid peer_id"));
}

#[test]
fn a_relay_peer_that_reconnects_takes_its_id_back() {
    let mut hub = Hub::new(Protocol::Relay);
    hub.connect("s1", None, None, T0);
    text(&mut hub, "s1", json!({ "type": "register", "peer_id": "alice" }), T0);
    hub.connect("s2", None, None, T0 + 10.0);
    let effects = text(&mut hub, "s2", json!({ "type": "register", "peer_id": "alice" }), T0 + 10.0);
    assert_eq!(closed(&effects), vec![("s1".into(), CLOSE_REPLACED)]);
    hub.connect("s3", None, None, T0);
    text(&mut hub, "s3", json!({ "type": "register", "peer_id": "bob" }), T0);
    let effects = text(&mut hub, "s3", json!({ "type": "relay", "to": "alice", "data": 1 }), T0);
    assert_eq!(sent(&effects)[0].0, "s2");
    // Re-registering one's own id is fine, and a close frees the id.
    assert!(closed(&text(&mut hub, "s2", json!({ "type": "register", "peer_id": "alice" }), T0)).is_empty());
    hub.disconnect("s2", T0);
    assert_eq!(error_of(&text(&mut hub, "s3", json!({ "type": "relay", "to": "alice", "data": 1 }), T0), "s3"), "Peer not found: alice");
}

#[test]
fn pubsub_delivers_to_subscribers_of_the_topic_only() {
    let mut hub = Hub::new(Protocol::PubSub);
    for socket in ["s1", "s2", "s3"] {
        hub.connect(socket, None, None, T0);
    }
    text(&mut hub, "s1", json!({ "type": "subscribe", "topic": "news" }), T0);
    text(&mut hub, "s2", json!({ "type": "subscribe", "topic": "news" }), T0);
    text(&mut hub, "s3", json!({ "type": "subscribe", "topic": "sport" }), T0);
    let effects = text(&mut hub, "s3", json!({ "type": "publish", "topic": "news", "payload": { "n": 1 } }), T0);
    let expected = json!({ "topic": "news", "payload": { "n": 1 } });
    assert_eq!(sent(&effects), vec![("s1".into(), expected.clone()), ("s2".into(), expected)]);
    text(&mut hub, "s2", json!({ "type": "unsubscribe", "topic": "news" }), T0);
    let effects = text(&mut hub, "s1", json!({ "type": "publish", "topic": "news", "payload": 2 }), T0);
    assert_eq!(sent(&effects), vec![("s1".into(), json!({ "topic": "news", "payload": 2 }))], "the publisher hears itself when subscribed");
    assert!(text(&mut hub, "s1", json!({ "type": "publish", "topic": "nobody", "payload": 2 }), T0).is_empty());
}

#[test]
fn pubsub_bounds_topics() {
    let mut hub = Hub::new(Protocol::PubSub);
    hub.connect("s1", None, None, T0);
    for i in 0..MAX_TOPICS {
        let effects = text(&mut hub, "s1", json!({ "type": "subscribe", "topic": format!("t{i}") }), T0);
        assert!(matches!(&effects[0], Effect::Save { member } if member.topics.len() == i + 1));
    }
    assert!(text(&mut hub, "s1", json!({ "type": "subscribe", "topic": "t0" }), T0).is_empty(), "subscribing twice is a no-op");
    assert!(error_of(&text(&mut hub, "s1", json!({ "type": "subscribe", "topic": "one more" }), T0), "s1").starts_with("Too many topics"));
    let long = "x".repeat(MAX_TOPIC_BYTES + 1);
    assert!(error_of(&text(&mut hub, "s1", json!({ "type": "subscribe", "topic": long }), T0), "s1").starts_with("A topic is"));
    assert_eq!(error_of(&text(&mut hub, "s1", json!({ "type": "publish", "topic": "t1" }), T0), "s1"), "Missing \"payload\"");
    let attachment = serde_json::to_string(hub.member("s1").unwrap()).unwrap();
    assert!(attachment.len() < 16 * 1024, "a full socket's attachment fits: {} bytes", attachment.len());
}

#[test]
fn a_hub_rebuilt_from_attachments_after_hibernation_behaves_as_before() {
    let mut hub = room(&["a", "b", "c"]);
    // The attachments, as the shell stored them from Save effects.
    let attachments: Vec<Member> = ["s1", "s2", "s3"].iter().map(|s| hub.member(s).unwrap().clone()).collect();
    let stored: Vec<String> = attachments.iter().map(|m| serde_json::to_string(m).unwrap()).collect();
    let members = stored.iter().map(|text| serde_json::from_str::<Member>(text).unwrap());
    let (mut woken, effects) = Hub::rebuild(Protocol::Room, members);
    assert!(effects.is_empty());
    let before = text(&mut hub, "s1", json!({ "type": "signal", "targetId": "c", "signal": 1 }), T0);
    let after = text(&mut woken, "s1", json!({ "type": "signal", "targetId": "c", "signal": 1 }), T0);
    assert_eq!(before, after);
    let joined = woken.connect("s4", Some("d"), None, T0 + 9000.0);
    assert_eq!(sent_to(&joined, "s4"), vec![json!({ "type": "peers", "peers": ["a", "b", "c"], "yourId": "d" })]);
    assert_eq!(sent(&woken.disconnect("s2", T0)).len(), 3);
}

#[test]
fn a_rebuild_keeps_the_latest_of_two_sockets_with_one_id_and_closes_the_other() {
    let member = |socket: &str, peer: &str, joined_at: f64| Member { protocol: Protocol::Room, socket: socket.into(), peer: Some(peer.into()), joined_at, topics: vec![], key: None };
    let (mut hub, effects) =
        Hub::rebuild(Protocol::Room, vec![member("s1", "a", T0 + 5.0), member("s2", "a", T0), member("s3", "b", T0)]);
    assert_eq!(closed(&effects), vec![("s2".into(), CLOSE_REPLACED)]);
    assert_eq!(hub.len(), 2);
    let effects = text(&mut hub, "s3", json!({ "type": "signal", "targetId": "a", "signal": 1 }), T0);
    assert_eq!(sent(&effects)[0].0, "s1");
}

#[test]
fn close_codes_that_may_not_be_sent_are_answered_with_a_normal_close() {
    for code in [1005, 1006, 1015, 0, 999, 1004, 2000, 5000] {
        assert_eq!(answer_close_code(code), 1000, "{code}");
    }
    for code in [1000, 1001, 1008, 1011, 3000, 4000, 4999] {
        assert_eq!(answer_close_code(code), code);
    }
}

#[test]
fn an_id_held_with_a_key_is_taken_over_only_with_that_key() {
    let mut hub = Hub::new(Protocol::Room);
    hub.connect("s1", Some("alice"), Some("secret"), T0);
    assert_eq!(hub.admit(Some("alice"), None).unwrap_err().0, 409);
    assert_eq!(hub.admit(Some("alice"), Some("guess")).unwrap_err().0, 409);
    assert!(hub.admit(Some("alice"), Some("secret")).is_ok());
    let effects = hub.connect("s2", Some("alice"), Some("secret"), T0 + 1.0);
    assert_eq!(closed(&effects), vec![("s1".into(), CLOSE_REPLACED)]);
    // Without a key (P2PCF-WS clients), a duplicate id replaces as before.
    hub.connect("s3", Some("bob"), None, T0);
    assert!(hub.admit(Some("bob"), None).is_ok());
}

#[test]
fn a_relay_id_registered_with_a_key_needs_the_key_to_register_again() {
    let mut hub = Hub::new(Protocol::Relay);
    for socket in ["s1", "s2", "s3"] {
        hub.connect(socket, None, None, T0);
    }
    text(&mut hub, "s1", json!({ "type": "register", "peer_id": "alice", "key": "k1" }), T0);
    let effects = text(&mut hub, "s2", json!({ "type": "register", "peer_id": "alice" }), T0);
    assert!(error_of(&effects, "s2").starts_with("peer_id in use"));
    let effects = text(&mut hub, "s3", json!({ "type": "register", "peer_id": "alice", "key": "k1" }), T0 + 5.0);
    assert_eq!(closed(&effects), vec![("s1".into(), CLOSE_REPLACED)]);
    assert!(error_of(&text(&mut hub, "s2", json!({ "type": "register", "peer_id": "x", "key": 5 }), T0), "s2").starts_with("\"key\" must be"));
}

#[test]
fn a_broadcast_costs_tokens_for_what_it_fans_out() {
    let mut hub = Hub::new(Protocol::Room);
    for i in 0..51 {
        hub.connect(&format!("s{i}"), Some(&format!("c{i}")), None, T0);
    }
    let big = json!({ "type": "broadcast", "data": "x".repeat(60 * 1024) });
    let mut delivered = 0;
    for _ in 0..10 {
        delivered += sent(&text(&mut hub, "s0", big.clone(), T0)).iter().filter(|(_, v)| v["type"] == "broadcast").count();
    }
    // 50 recipients x 60 KiB = ~47 tokens a frame: a full bucket (200) pays for 5 such frames.
    assert_eq!(delivered, 5 * 50);
}

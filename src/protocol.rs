//! The P2PCF wire protocol: what a client may send, checked once at the door.
//!
//! Everything past this module works with typed, validated values, so nothing malformed can reach
//! storage. Error texts match the reference worker (`p2pcf@1.3.14`, `src/worker.js`) wherever it
//! answers 400, because clients and tests may read them; where the reference crashes (500) or
//! silently stores garbage, we answer 400 with a one-line message instead.

use base64::Engine;
use serde_json::{Map, Number, Value};
use std::net::{Ipv4Addr, Ipv6Addr};

/// The longest id (room, context, session, client, delete key) the reference accepts.
pub const MAX_ID_LEN: usize = 64;
/// Room ids are at least this long.
pub const MIN_ROOM_LEN: usize = 4;
/// Longest lifetime a client may ask for (`x`), in ms.
pub const MAX_EXPIRY_MS: f64 = 24.0 * 60.0 * 60.0 * 1000.0;
/// How far a data timestamp (`t`) may stray from the worker's clock, in ms.
pub const MAX_CLOCK_SKEW_MS: f64 = 10.0 * 60.0 * 1000.0;
/// Largest handshake package, as JSON text. A browser's is ~600 bytes; a host with many interfaces
/// lists a candidate per address (a Node peer here sent packages over 4 KiB). The room's byte cap,
/// not this, is what keeps packages from crowding a room (docs/storage.md).
pub const MAX_PACKAGE_BYTES: usize = 16 * 1024;
/// Most reflexive IPs a peer may list (`d[5]`). A browser finds one or two per address family; the
/// cap keeps a row's peer data small, so rows alone can never fill a room (see `room`).
pub const MAX_REFLEXIVE_IPS: usize = 16;
/// A DTLS fingerprint is a SHA-256 digest: 32 bytes, 44 characters of base64.
const DTLS_FINGERPRINT_BYTES: usize = 32;
const DTLS_FINGERPRINT_CHARS: usize = 44;

/// A request the worker refuses, with the status and one-line text to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub message: String,
}

impl Rejection {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Rejection { status: 400, message: message.into() }
    }
}

/// What a peer publishes about itself: `d` in the wire format.
///
/// The six values are kept as the client sent them (after validation) so that other peers
/// receive them byte-for-byte as the reference would serve them.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerData {
    pub session_id: String,
    pub values: Vec<Value>,
}

/// A validated poll, publish or leave request body.
#[derive(Debug, Clone, PartialEq)]
pub struct Body {
    /// `r`: the room.
    pub room: String,
    /// `k`: the caller's context id (stable across page reloads).
    pub context: Option<String>,
    /// `d`, `t`, `x`: present when the caller identifies itself.
    pub peer: Option<Identified>,
    /// `p`: the caller's handshake packages; only meaningful with `peer`.
    pub packages: Option<Vec<Value>>,
    /// `dk`: the delete key returned by an earlier publish.
    pub delete_key: Option<String>,
}

/// The fields that come with `d`.
#[derive(Debug, Clone, PartialEq)]
pub struct Identified {
    pub context: String,
    pub data: PeerData,
    /// `t`, kept as sent so it round-trips exactly.
    pub timestamp: Number,
    /// `x`, in ms.
    pub expiry_ms: f64,
}

impl Body {
    /// A publish writes the caller's row: it needs both `d` and `p`, as in the reference.
    pub fn is_publish(&self) -> bool {
        self.peer.is_some() && self.packages.is_some()
    }
}

/// Parse and validate a request body, in the reference's order of checks, against the worker's
/// clock `now_ms`.
pub fn parse_body(bytes: &[u8], now_ms: f64) -> Result<Body, Rejection> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|_| Rejection::bad_request("Bad JSON: the body must be a JSON object"))?;
    let Value::Object(fields) = value else {
        return Err(Rejection::bad_request("Bad JSON: the body must be a JSON object"));
    };

    let room = parse_room(fields.get("r"))?;
    let context = match fields.get("k") {
        None | Some(Value::Null) => None,
        Some(k) => Some(id_string(k).ok_or_else(|| Rejection::bad_request("Bad context id"))?),
    };

    // Like the reference, a falsy `d` (null, false, 0, "") means "not identifying".
    let peer = match fields.get("d") {
        Some(d) if is_truthy(d) => Some(parse_identified(&fields, d, now_ms)?),
        _ => None,
    };

    let packages = match (&peer, fields.get("p")) {
        (Some(_), Some(p)) if !p.is_null() => Some(parse_packages(p)?),
        _ => None,
    };

    let delete_key = match fields.get("dk") {
        None | Some(Value::Null) => None,
        Some(dk) => Some(id_string(dk).ok_or_else(|| Rejection::bad_request("Bad delete key"))?),
    };

    Ok(Body { room, context, peer, packages, delete_key })
}

/// `r`: 4–64 characters of `[A-Za-z0-9_-]`.
fn parse_room(r: Option<&Value>) -> Result<String, Rejection> {
    let valid = match r {
        Some(Value::String(s)) => {
            (MIN_ROOM_LEN..=MAX_ID_LEN).contains(&s.len())
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        }
        _ => false,
    };
    match (valid, r) {
        (true, Some(Value::String(s))) => Ok(s.clone()),
        // The reference concatenates the raw value onto the message, JavaScript-style; we do too,
        // but keep the message one short line.
        _ => Err(Rejection::bad_request(format!("Bad room id{}", one_line(&js_string(r))))),
    }
}

fn parse_identified(fields: &Map<String, Value>, d: &Value, now_ms: f64) -> Result<Identified, Rejection> {
    let expiry_ms = match fields.get("x").and_then(Value::as_f64) {
        Some(x) if x > 0.0 && x <= MAX_EXPIRY_MS => x,
        _ => return Err(Rejection::bad_request("Bad expiration")),
    };

    let timestamp = match fields.get("t") {
        Some(Value::Number(t)) if t.as_f64().is_some_and(|t| t != 0.0 && (t - now_ms).abs() <= MAX_CLOCK_SKEW_MS) => {
            t.clone()
        }
        _ => return Err(Rejection::bad_request("Bad timestamp")),
    };

    let context = fields
        .get("k")
        .and_then(id_string)
        .ok_or_else(|| Rejection::bad_request("Bad context id"))?;

    let values = match d {
        Value::Array(values) if values.len() == 6 => values.clone(),
        _ => return Err(Rejection::bad_request("Bad data length")),
    };

    let session_id = id_string(&values[0]).ok_or_else(|| Rejection::bad_request("Bad session id"))?;
    id_string(&values[1]).ok_or_else(|| Rejection::bad_request("Bad client id"))?;
    if !values[2].is_boolean() {
        return Err(Rejection::bad_request("Bad is symmetric"));
    }
    let fingerprint = match &values[3] {
        Value::String(s) if utf16_len(s) == DTLS_FINGERPRINT_CHARS => s.as_str(),
        _ => return Err(Rejection::bad_request("Bad dtls")),
    };
    if !values[4].as_f64().is_some_and(|joined| joined != 0.0) {
        return Err(Rejection::bad_request("Bad joined at timestamp"));
    }
    let ips_ok = match &values[5] {
        Value::Array(ips) => ips.len() <= MAX_REFLEXIVE_IPS && ips.iter().all(|ip| ip.as_str().is_some_and(is_ip_address)),
        _ => false,
    };
    if !ips_ok {
        return Err(Rejection::bad_request("Bad reflexive IPs"));
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(fingerprint);
    if !decoded.is_ok_and(|bytes| bytes.len() == DTLS_FINGERPRINT_BYTES) {
        return Err(Rejection::bad_request("Bad base64 encoding"));
    }

    Ok(Identified { context, data: PeerData { session_id, values }, timestamp, expiry_ms })
}

/// `p`: a list of packages, each an array whose first item is the target session id.
fn parse_packages(p: &Value) -> Result<Vec<Value>, Rejection> {
    let bad = || Rejection::bad_request("Bad packages: expected an array of arrays, each starting with a session id");
    let Value::Array(packages) = p else { return Err(bad()) };
    for package in packages {
        match package {
            Value::Array(items) if items.first().and_then(id_string).is_some() => {}
            _ => return Err(bad()),
        }
        if serde_json::to_string(package).map_or(true, |text| text.len() > MAX_PACKAGE_BYTES) {
            return Err(Rejection::bad_request(format!("Bad packages: a package is larger than {MAX_PACKAGE_BYTES} bytes")));
        }
    }
    Ok(packages.clone())
}

/// The session a package is addressed to (validated by `parse_packages`).
pub fn package_target(package: &Value) -> Option<&str> {
    package.get(0).and_then(Value::as_str)
}

/// Percent-encode every byte of `s` but ASCII letters, digits and `unreserved`, so any text is one
/// safe storage-key segment (JavaScript's `encodeURIComponent` keeps ``-_.!~*'()``).
pub fn percent_encode(s: &str, unreserved: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for byte in s.bytes() {
        if byte.is_ascii_alphanumeric() || unreserved.contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `%XX` escapes back to bytes; `None` if an escape is broken or the result is not UTF-8.
pub fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A non-empty string of at most 64 UTF-16 code units (JavaScript's `length`).
fn id_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() && utf16_len(s) <= MAX_ID_LEN => Some(s.clone()),
        _ => None,
    }
}

fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// A literal IPv4 or IPv6 address (reflexive addresses are public, so no zone ids).
fn is_ip_address(s: &str) -> bool {
    s.parse::<Ipv4Addr>().is_ok() || s.parse::<Ipv6Addr>().is_ok()
}

/// JavaScript truthiness, which the reference uses to decide whether `d` is present.
fn is_truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// Longest echo of a client's value in an error message.
const MAX_ECHO_CHARS: usize = 100;

/// Escape control characters and cut long text, so an echoed value keeps a message on one line.
fn one_line(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars().take(MAX_ECHO_CHARS) {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if text.chars().count() > MAX_ECHO_CHARS {
        out.push('…');
    }
    out
}

/// How JavaScript renders a value in string concatenation (`'Bad room id' + payload.r`).
pub fn js_string(value: Option<&Value>) -> String {
    match value {
        None => "undefined".to_string(),
        Some(Value::Null) => "null".to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => js_number(n),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::Null => String::new(),
                other => js_string(Some(other)),
            })
            .collect::<Vec<_>>()
            .join(","),
        Some(Value::Object(_)) => "[object Object]".to_string(),
    }
}

fn js_number(n: &Number) -> String {
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e21 => format!("{}", f as i128),
        Some(f) => format!("{f}"),
        None => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: f64 = 1_700_000_000_000.0;
    const DTLS: &str = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=";

    fn publish() -> Value {
        json!({
            "r": "room-1", "k": "ctx-1", "t": NOW, "x": 120000,
            "d": ["sess-1", "client-1", false, DTLS, NOW, ["1.2.3.4", "2001:db8::1"]],
            "p": [["sess-2", "sess-1", null, null, null, "ufrag", "pwd", NOW, []]]
        })
    }

    fn parse(value: &Value) -> Result<Body, Rejection> {
        parse_body(value.to_string().as_bytes(), NOW)
    }

    fn message(value: &Value) -> String {
        parse(value).unwrap_err().message
    }

    #[test]
    fn accepts_a_real_client_publish() {
        let body = parse(&publish()).unwrap();
        assert_eq!(body.room, "room-1");
        assert!(body.is_publish());
        let peer = body.peer.unwrap();
        assert_eq!(peer.data.session_id, "sess-1");
        assert_eq!(peer.timestamp.as_f64(), Some(NOW));
        assert_eq!(body.packages.unwrap().len(), 1);
    }

    #[test]
    fn a_read_only_poll_needs_only_the_room() {
        let body = parse(&json!({"r": "room-1", "k": "ctx"})).unwrap();
        assert!(body.peer.is_none() && !body.is_publish());
        // a falsy d is "no d", as in the reference
        assert!(parse(&json!({"r": "room-1", "d": 0})).unwrap().peer.is_none());
        // p without d is ignored, never stored
        assert!(parse(&json!({"r": "room-1", "p": 5})).unwrap().packages.is_none());
    }

    #[test]
    fn room_errors_render_the_value_like_javascript() {
        assert_eq!(message(&json!({})), "Bad room idundefined");
        assert_eq!(message(&json!({"r": null})), "Bad room idnull");
        assert_eq!(message(&json!({"r": "abc"})), "Bad room idabc");
        assert_eq!(message(&json!({"r": "bad room"})), "Bad room idbad room");
        assert_eq!(message(&json!({"r": 12345})), "Bad room id12345");
        assert_eq!(message(&json!({"r": ["ab", null, 1]})), "Bad room idab,,1");
        assert_eq!(message(&json!({"r": {"a": 1}})), "Bad room id[object Object]");
        assert_eq!(message(&json!({"r": "x".repeat(65)})), format!("Bad room id{}", "x".repeat(65)));
        assert!(parse(&json!({"r": "x".repeat(64)})).is_ok());
        assert_eq!(message(&json!({"r": "a\nb"})), "Bad room ida\\nb");
        assert_eq!(message(&json!({"r": "y".repeat(500)})), format!("Bad room id{}…", "y".repeat(100)));
    }

    #[test]
    fn non_objects_are_rejected_with_a_message() {
        for body in ["", "nope", "null", "[]", "5", "\"room\""] {
            let err = parse_body(body.as_bytes(), NOW).unwrap_err();
            assert_eq!(err.status, 400);
            assert!(err.message.starts_with("Bad JSON"), "{body}: {}", err.message);
        }
    }

    #[test]
    fn every_identity_field_is_checked_in_reference_order() {
        let cases: Vec<(&str, Value, &str)> = vec![
            ("x", json!(null), "Bad expiration"),
            ("x", json!(0), "Bad expiration"),
            ("x", json!(-5), "Bad expiration"),
            ("x", json!("120000"), "Bad expiration"),
            ("x", json!(MAX_EXPIRY_MS + 1.0), "Bad expiration"),
            ("t", json!(NOW - MAX_CLOCK_SKEW_MS - 1.0), "Bad timestamp"),
            ("t", json!(NOW + MAX_CLOCK_SKEW_MS + 1.0), "Bad timestamp"),
            ("t", json!("now"), "Bad timestamp"),
            ("k", json!(""), "Bad context id"),
            ("k", json!(42), "Bad context id"),
            ("k", json!("k".repeat(65)), "Bad context id"),
            ("d", json!([1, 2, 3]), "Bad data length"),
            ("d", json!("abcdef"), "Bad data length"),
        ];
        for (field, value, expected) in cases {
            let mut body = publish();
            body[field] = value.clone();
            assert_eq!(message(&body), expected, "{field} = {value}");
        }
    }

    #[test]
    fn every_peer_data_slot_is_checked() {
        let cases: Vec<(usize, Value, &str)> = vec![
            (0, json!(""), "Bad session id"),
            (0, json!(7), "Bad session id"),
            (0, json!("s".repeat(65)), "Bad session id"),
            (1, json!(null), "Bad client id"),
            (2, json!("false"), "Bad is symmetric"),
            (3, json!("short"), "Bad dtls"),
            (4, json!(0), "Bad joined at timestamp"),
            (4, json!("yesterday"), "Bad joined at timestamp"),
            (5, json!("1.2.3.4"), "Bad reflexive IPs"),
            (5, json!(["1.2.3.4", "not an ip"]), "Bad reflexive IPs"),
            (5, json!([1234]), "Bad reflexive IPs"),
            (5, json!(["999.1.1.1"]), "Bad reflexive IPs"),
            (5, json!(vec!["1.2.3.4"; MAX_REFLEXIVE_IPS + 1]), "Bad reflexive IPs"),
            (3, json!("!".repeat(44)), "Bad base64 encoding"),
            // 44 characters without padding decode to 33 bytes: not a SHA-256 fingerprint
            (3, json!("A".repeat(44)), "Bad base64 encoding"),
        ];
        for (slot, value, expected) in cases {
            let mut body = publish();
            body["d"][slot] = value.clone();
            assert_eq!(message(&body), expected, "d[{slot}] = {value}");
        }
    }

    #[test]
    fn empty_reflexive_ips_are_allowed() {
        let mut body = publish();
        body["d"][5] = json!([]);
        assert!(parse(&body).is_ok());
    }

    #[test]
    fn packages_must_be_arrays_addressed_to_a_session() {
        for bad in [json!("x"), json!({}), json!([5]), json!([[]]), json!([[null, 1]]), json!([["s".repeat(65)]])] {
            let mut body = publish();
            body["p"] = bad.clone();
            assert!(message(&body).starts_with("Bad packages"), "p = {bad}");
        }
        let mut body = publish();
        body["p"] = json!([]);
        assert_eq!(parse(&body).unwrap().packages.unwrap().len(), 0);
        body["p"] = json!([["sess-2", "x".repeat(MAX_PACKAGE_BYTES)]]);
        assert!(message(&body).contains("larger than 16384 bytes"));
    }

    #[test]
    fn delete_keys_must_be_short_strings() {
        assert_eq!(message(&json!({"r": "room-1", "dk": 5})), "Bad delete key");
        assert_eq!(message(&json!({"r": "room-1", "dk": "k".repeat(65)})), "Bad delete key");
    }

    #[test]
    fn timestamps_round_trip_exactly() {
        let body = parse(&publish()).unwrap();
        assert_eq!(Value::Number(body.peer.unwrap().timestamp).to_string(), "1700000000000.0");
        let raw = format!(
            r#"{{"r":"room-1","k":"c","t":{},"x":1,"d":["s","c",true,"{DTLS}",5,[]],"p":[]}}"#,
            NOW as u64
        );
        let body = parse_body(raw.as_bytes(), NOW).unwrap();
        assert_eq!(Value::Number(body.peer.unwrap().timestamp).to_string(), "1700000000000");
    }
}

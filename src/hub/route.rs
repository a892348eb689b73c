//! Which object a socket request goes to, decided before any object is touched.
//!
//! A Durable Object request is billed (and on the free plan, counted) when the worker forwards it,
//! so everything that can be refused is refused here, in the fetch entry: a request that is not a
//! WebSocket upgrade (426), an invalid room, namespace or client id (400), a method other than GET
//! (405).

use super::{check_id, Protocol};
use crate::protocol::percent_decode;

/// A socket endpoint, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub protocol: Protocol,
    /// The room (P2PCF-WS) or namespace (relay, pub/sub), percent-decoded.
    pub scope: String,
    /// P2PCF-WS's `clientId` query parameter.
    pub client_id: Option<String>,
    /// The optional `key` query parameter: a secret that protects the client id from takeover.
    pub key: Option<String>,
}

impl Endpoint {
    /// The Durable Object's name: one object per protocol and room or namespace.
    pub fn object_name(&self) -> String {
        let kind = match self.protocol {
            Protocol::Room => "room",
            Protocol::Relay => "relay",
            Protocol::PubSub => "pubsub",
        };
        format!("{kind}:{}", self.scope)
    }
}

/// The namespace of a bare `/relay`.
pub const DEFAULT_NAMESPACE: &str = "default";

/// `None` when `path` is not a socket path. Otherwise the endpoint, or the status and text to
/// refuse the request with. `path` is as sent (percent-encoded), `query` without the `?`.
pub fn endpoint(method: &str, path: &str, query: &str, upgrade: Option<&str>) -> Option<Result<Endpoint, (u16, String)>> {
    let (protocol, scope) = if let Some(room) = path.strip_prefix("/ws/room/") {
        (Protocol::Room, room)
    } else if path == "/relay" || path == "/relay/" {
        (Protocol::Relay, DEFAULT_NAMESPACE)
    } else if let Some(namespace) = path.strip_prefix("/relay/") {
        (Protocol::Relay, namespace)
    } else if let Some(namespace) = path.strip_prefix("/pubsub/") {
        (Protocol::PubSub, namespace)
    } else if path == "/ws/room" || path == "/ws/room/" || path == "/pubsub" || path == "/pubsub/" {
        return Some(Err((400, format!("Missing the {} in the path", if path.starts_with("/ws") { "room id" } else { "namespace" }))));
    } else {
        return None;
    };
    Some(check(method, protocol, scope, query, upgrade))
}

fn check(method: &str, protocol: Protocol, scope: &str, query: &str, upgrade: Option<&str>) -> Result<Endpoint, (u16, String)> {
    if method != "GET" {
        return Err((405, "Method not allowed: open a WebSocket with GET".into()));
    }
    if !upgrade.is_some_and(|u| u.trim().eq_ignore_ascii_case("websocket")) {
        return Err((426, "Expected a WebSocket upgrade (Upgrade: websocket)".into()));
    }
    let what = if protocol == Protocol::Room { "room id" } else { "namespace" };
    let scope = percent_decode(scope.trim_end_matches('/')).ok_or_else(|| (400, format!("Invalid {what}: bad percent-encoding")))?;
    if scope.contains('/') {
        return Err((400, format!("Invalid {what}: it may not contain '/'")));
    }
    check_id(what, &scope).map_err(|e| (400, e))?;
    let client_id = match protocol {
        Protocol::Room => {
            let id = query_param(query, "clientId").ok_or_else(|| (400, "Missing the clientId query parameter".to_string()))?;
            let id = id.ok_or_else(|| (400, "Invalid clientId: bad percent-encoding".to_string()))?;
            check_id("clientId", &id).map_err(|e| (400, e))?;
            Some(id)
        }
        _ => None,
    };
    let key = match query_param(query, "key") {
        None => None,
        Some(Some(key)) if super::is_valid_key(&key) => Some(key),
        Some(_) => return Err((400, format!("Invalid key: 1 to {} bytes", super::MAX_ID_BYTES))),
    };
    Ok(Endpoint { protocol, scope, client_id, key })
}

/// The first value of `name` in a query string (form-decoded; `Some(None)` when undecodable).
fn query_param(query: &str, name: &str) -> Option<Option<String>> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then(|| percent_decode(&value.replace('+', " ")))
    })
}


#[cfg(test)]
mod tests {
    use super::*;

    const WS: Option<&str> = Some("websocket");

    #[test]
    fn room_endpoints_carry_room_and_client_id() {
        let room = endpoint("GET", "/ws/room/my%20room", "clientId=a%2Bb&x=1", WS).unwrap().unwrap();
        assert_eq!(room, Endpoint { protocol: Protocol::Room, scope: "my room".into(), client_id: Some("a+b".into()), key: None });
        assert_eq!(room.object_name(), "room:my room");
    }

    #[test]
    fn relay_and_pubsub_endpoints_name_their_namespace() {
        assert_eq!(endpoint("GET", "/relay", "", WS).unwrap().unwrap().object_name(), "relay:default");
        assert_eq!(endpoint("GET", "/relay/games", "", WS).unwrap().unwrap().object_name(), "relay:games");
        assert_eq!(endpoint("GET", "/pubsub/app", "", Some("WebSocket")).unwrap().unwrap().object_name(), "pubsub:app");
    }

    #[test]
    fn other_paths_are_not_socket_paths() {
        for path in ["/", "/health", "/demo", "/relayx", "/wsroom/a"] {
            assert_eq!(endpoint("GET", path, "", WS), None, "{path}");
        }
    }

    #[test]
    fn requests_that_cannot_open_a_socket_are_refused_before_any_object() {
        let status = |method, path, query, upgrade| endpoint(method, path, query, upgrade).unwrap().unwrap_err().0;
        assert_eq!(status("GET", "/ws/room/abcd", "clientId=x", None), 426);
        assert_eq!(status("GET", "/pubsub/app", "", Some("h2c")), 426);
        assert_eq!(status("POST", "/relay", "", WS), 405);
        assert_eq!(status("GET", "/ws/room/abcd", "", WS), 400);
        assert_eq!(status("GET", "/ws/room/abcd", "clientId=", WS), 400);
        assert_eq!(status("GET", "/ws/room/abcd", "clientId=%ZZ", WS), 400);
        assert_eq!(status("GET", "/ws/room/abcd", "clientId=%0A", WS), 400);
        assert_eq!(status("GET", "/ws/room/", "clientId=x", WS), 400);
        assert_eq!(status("GET", "/ws/room/a/b", "clientId=x", WS), 400);
        assert_eq!(status("GET", "/pubsub/", "", WS), 400);
        let long = "r".repeat(129);
        assert_eq!(status("GET", &format!("/relay/{long}"), "", WS), 400);
    }
}

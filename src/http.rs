//! The worker as a function from request to response, with no runtime types.
//!
//! Routing, status codes, texts and CORS headers follow the reference worker exactly (see
//! docs/conformance.md for the deliberate differences). The wasm shell converts a
//! `worker::Request` into an `HttpRequest`, calls `handle`, and converts the answer back; so the
//! whole of the worker's behaviour is testable natively against `MemoryStore`.

use crate::hub::route::{self, Endpoint};
use crate::layout::{Failure, Storage};
use crate::platform::{Pace, Platform};
use crate::protocol::{parse_body, Rejection};
use crate::quota::{Admission, Gate, Ledgers, QuotaPolicy};
use crate::service;
use crate::store::{OpCounts, Store};
use std::cell::RefCell;

/// Largest request body accepted (413 beyond). A newcomer in a 100-peer room publishes one
/// handshake package per peer, at most ~2.35 KiB each: ~233 KiB, plus its peer data.
/// docs/storage.md has the arithmetic.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

const CORS_HEADERS: [(&str, &str); 3] = [
    ("Access-Control-Allow-Origin", "*"),
    ("Access-Control-Allow-Methods", "GET,HEAD,POST,DELETE,OPTIONS"),
    ("Access-Control-Max-Age", "86400"),
];
const TEXT: &str = "text/plain;charset=UTF-8";
/// Served at `/INSTALL.md`, so the status page can link to the deployment guide.
const INSTALL_GUIDE: &str = include_str!("../INSTALL.md");

/// A request, as much of it as the worker looks at.
#[derive(Debug, Clone, Default)]
pub struct HttpRequest {
    pub method: String,
    pub path: String,
    /// The query string, without the `?` (socket paths read ids from it).
    pub query: String,
    /// Header names in any case; looked up case-insensitively.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The shell stopped reading the body at `MAX_BODY_BYTES` (a streamed body without a length).
    pub body_over_cap: bool,
}

impl HttpRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim())
    }

    /// Whether the shell must read the body before calling `handle`: only for requests that can be
    /// served (POST, DELETE, or any method with `X-Worker-Method: DELETE`, as the reference);
    /// others get 405 or a status page without it being read.
    pub fn wants_body(method: &str, worker_method: Option<&str>) -> bool {
        matches!(method, "POST" | "DELETE") || (worker_method == Some("DELETE") && !matches!(method, "GET" | "HEAD" | "OPTIONS"))
    }
}

/// A response to send.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    /// Set instead of an answer: the request opens a WebSocket, and the shell hands it to this
    /// endpoint's Durable Object.
    pub upgrade: Option<Endpoint>,
}

impl HttpResponse {
    fn new(status: u16, headers: &[(&str, &str)], body: Option<String>) -> Self {
        let headers = headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
        HttpResponse { status, headers, body, upgrade: None }
    }

    /// A plain-text answer without CORS headers (as the reference sends 401, 429, 405 and
    /// content-type errors).
    fn bare_text(status: u16, text: &str) -> Self {
        Self::new(status, &[("Content-Type", TEXT)], Some(text.to_string()))
    }

    /// A plain-text answer a browser may read: CORS headers and `Vary: Origin`.
    fn cors_text(status: u16, text: String) -> Self {
        let mut response = Self::new(status, &CORS_HEADERS, Some(text));
        response.headers.push(("Vary".into(), "Origin".into()));
        response.headers.push(("Content-Type".into(), TEXT.into()));
        response
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Everything `handle` needs from the environment.
pub struct Context<'a, S: Store, P: Platform> {
    /// The bound R2 bucket, if any.
    pub store: Option<&'a S>,
    /// Clock, randomness, sleep, log.
    pub platform: &'a P,
    /// How fast one key may be written (`R2_WRITE_INTERVAL_MS`; R2's one second by default).
    pub pace: Pace,
    pub policy: &'a QuotaPolicy,
    pub ledgers: &'a RefCell<Ledgers>,
}

/// Answer one request. Never panics on input; every answer carries the storage operations it cost
/// in `Server-Timing`.
pub async fn handle<S: Store, P: Platform>(request: &HttpRequest, cx: Context<'_, S, P>) -> HttpResponse {
    let before = cx.store.map(|s| s.ops()).unwrap_or_default();
    let store = cx.store;
    let mut response = route(request, cx).await;
    let after = store.map(|s| s.ops()).unwrap_or_default();
    let spent = OpCounts {
        get: after.get - before.get,
        put: after.put - before.put,
        delete: after.delete - before.delete,
        list: after.list - before.list,
    };
    response.headers.push(("Server-Timing".into(), spent.server_timing()));
    response
}

async fn route<S: Store, P: Platform>(request: &HttpRequest, cx: Context<'_, S, P>) -> HttpResponse {
    if request.path == "/health" && matches!(request.method.as_str(), "GET" | "HEAD") {
        return HttpResponse::new(200, &[("Content-Type", TEXT)], Some("OK".into()));
    }
    match cx.policy.gate(request.header("Origin")) {
        Gate::Open => {}
        Gate::Unauthorized => return HttpResponse::bare_text(401, "Unauthorized"),
        Gate::Metered(quota) => {
            if let (Some(store), Some(origin)) = (cx.store, request.header("Origin")) {
                if Ledgers::admit(cx.ledgers, store, origin, quota, cx.platform.now_ms()).await == Admission::OverQuota {
                    return HttpResponse::bare_text(429, "Over quota");
                }
            }
        }
    }

    // Socket paths: refused here when they cannot open a socket, so no object is billed for it.
    if let Some(endpoint) = route::endpoint(&request.method, &request.path, &request.query, request.header("Upgrade")) {
        return match endpoint {
            Ok(endpoint) => HttpResponse { upgrade: Some(endpoint), ..HttpResponse::new(101, &[], None) },
            Err((status, text)) => HttpResponse::cors_text(status, text),
        };
    }

    match request.method.as_str() {
        "GET" if request.path == "/INSTALL.md" => {
            return HttpResponse::new(200, &[("Content-Type", "text/markdown;charset=UTF-8")], Some(INSTALL_GUIDE.into()))
        }
        "GET" if wants_json(request.header("Accept")) => return endpoints_description(cx.store.is_some()),
        "GET" => return status_page(cx.store.is_some()),
        "OPTIONS" => return preflight(request),
        _ => {}
    }

    if !is_json(request.header("Content-Type")) {
        return HttpResponse::bare_text(400, "Expected content-type application/json");
    }
    let is_delete = request.method == "DELETE" || request.header("X-Worker-Method") == Some("DELETE");
    if !is_delete && request.method != "POST" {
        return HttpResponse::bare_text(405, "Method not allowed");
    }
    let declared_length = request.header("Content-Length").and_then(|n| n.parse::<usize>().ok());
    if request.body_over_cap || request.body.len() > MAX_BODY_BYTES || declared_length.is_some_and(|n| n > MAX_BODY_BYTES) {
        return HttpResponse::cors_text(413, format!("Request body too large: the limit is {MAX_BODY_BYTES} bytes"));
    }

    match serve(request, is_delete, cx).await {
        Ok(json) => HttpResponse::cors_text(200, json),
        Err(Failure::Rejected(Rejection { status, message })) => HttpResponse::cors_text(status, message),
        Err(Failure::Unavailable(message)) => HttpResponse::cors_text(503, message),
    }
}

async fn serve<S: Store, P: Platform>(request: &HttpRequest, is_delete: bool, cx: Context<'_, S, P>) -> Result<String, Failure> {
    let body = parse_body(&request.body, cx.platform.now_ms())?;
    let Some(store) = cx.store else {
        return Err(Failure::Unavailable("No R2 bucket is bound to this worker; see INSTALL.md".into()));
    };
    let storage = Storage::new(store, cx.platform, cx.pace);
    if is_delete {
        service::leave(&storage, &body).await?;
        Ok("{}".into())
    } else {
        Ok(service::poll(&storage, &body).await?.to_json())
    }
}

/// `application/json`, in any case, with optional parameters (the p2pcf client sends a trailing
/// space, which header parsing already trims).
fn is_json(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

fn preflight(request: &HttpRequest) -> HttpResponse {
    let is_cors_preflight = request.header("Origin").is_some() && request.header("Access-Control-Request-Method").is_some();
    match request.header("Access-Control-Request-Headers") {
        Some(asked) if is_cors_preflight => {
            let mut response = HttpResponse::new(200, &CORS_HEADERS, None);
            response.headers.push(("Access-Control-Allow-Headers".into(), asked.to_string()));
            response
        }
        _ => HttpResponse::new(200, &[("Allow", "GET, POST, DELETE, OPTIONS")], None),
    }
}

/// An `Accept` header that asks for JSON before HTML (P2PCF-WS clients discover endpoints so).
fn wants_json(accept: Option<&str>) -> bool {
    accept.is_some_and(|accept| {
        let first = accept.split(',').next().unwrap_or("").split(';').next().unwrap_or("").trim();
        first.eq_ignore_ascii_case("application/json")
    })
}

/// `GET /` for programs: the endpoints this worker serves.
fn endpoints_description(has_bucket: bool) -> HttpResponse {
    let description = serde_json::json!({
        "name": "p2pcf-rs",
        "polling": { "path": "/", "methods": ["POST", "DELETE"], "ready": has_bucket },
        "websocket": {
            "room": "/ws/room/:roomId?clientId=ID",
            "relay": "/relay/:namespace",
            "pubsub": "/pubsub/:namespace",
        },
        "limits": {
            "frameBytes": crate::hub::MAX_FRAME_BYTES,
            "socketsPerRoom": crate::hub::MAX_SOCKETS,
            "framesPerSecond": crate::hub::FRAMES_PER_SECOND,
            "frameBurst": crate::hub::FRAME_BURST,
        },
        "health": "/health",
    });
    let mut response = HttpResponse::new(200, &CORS_HEADERS, Some(description.to_string()));
    response.headers.push(("Content-Type".into(), "application/json".into()));
    response
}

fn status_page(has_bucket: bool) -> HttpResponse {
    let status = if has_bucket {
        "&#128077; R2 bucket is configured properly, ready to serve."
    } else {
        "&#10060; Couldn't find a configured R2 bucket. Bind one to this worker (see INSTALL.md) and deploy again."
    };
    let page = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>P2PCF worker</title></head>\
         <body style=\"font: 20px/1.5 system-ui, sans-serif; padding: 18px; max-width: 40em\">\
         <h1 style=\"font-size: 1.4em\">P2PCF signalling worker (Rust)</h1><p>{status}</p>\
         <p>Point a <code>p2pcf</code> client at this URL with the <code>workerUrl</code> option. \
         <a href=\"/INSTALL.md\">INSTALL.md</a> explains how to deploy your own.</p>\
         <p><a href=\"/demo\">Open the demo room</a>: chat and video between browser tabs, through this worker.</p>\
         </body></html>"
    );
    HttpResponse::new(200, &[("Content-Type", "text/html")], Some(page))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use crate::testing::{block_on, TestPlatform};
    use serde_json::{json, Value};

    const NOW: f64 = 1_795_435_200_000.0;
    const DTLS: &str = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=";

    struct Worker {
        store: MemoryStore,
        policy: QuotaPolicy,
        ledgers: RefCell<Ledgers>,
        platform: TestPlatform,
        bucket: bool,
    }

    impl Worker {
        fn new() -> Self {
            Worker { store: MemoryStore::new(), policy: QuotaPolicy::default(), ledgers: RefCell::default(), platform: TestPlatform::at(NOW), bucket: true }
        }

        fn send(&self, method: &str, headers: &[(&str, &str)], body: &str) -> HttpResponse {
            self.send_to(method, "/", "", headers, body)
        }

        fn send_to(&self, method: &str, path: &str, query: &str, headers: &[(&str, &str)], body: &str) -> HttpResponse {
            let request = HttpRequest {
                method: method.into(),
                path: path.into(),
                query: query.into(),
                headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
                body: body.as_bytes().to_vec(),
                body_over_cap: false,
            };
            let cx = Context {
                store: self.bucket.then_some(&self.store),
                platform: &self.platform,
                pace: Pace::default(),
                policy: &self.policy,
                ledgers: &self.ledgers,
            };
            block_on(&self.platform, handle(&request, cx))
        }

        fn post(&self, body: &Value) -> HttpResponse {
            self.send("POST", &[("Content-Type", "application/json")], &body.to_string())
        }
    }

    fn publish(n: u32) -> Value {
        json!({
            "r": "room-1", "k": format!("ctx-{n}"), "t": NOW, "x": 120000,
            "d": [format!("sess-{n}"), "client", false, DTLS, NOW, []], "p": []
        })
    }

    #[test]
    fn a_publish_answers_json_with_cors_and_its_cost() {
        let worker = Worker::new();
        let response = worker.post(&publish(1));
        assert_eq!(response.status, 200);
        assert_eq!(serde_json::from_str::<Value>(response.body.as_deref().unwrap()).unwrap(), json!({"ps": [], "pk": [], "dk": worker.platform.last_key()}));
        assert_eq!(response.header("Access-Control-Allow-Origin"), Some("*"));
        assert_eq!(response.header("Vary"), Some("Origin"));
        assert_eq!(response.header("Server-Timing"), Some("r2;desc=\"get=1 put=1 delete=0 list=0\""));
    }

    #[test]
    fn socket_paths_are_handed_to_their_object_or_refused_before_it() {
        let worker = Worker::new();
        let upgrade = [("Upgrade", "websocket")];
        let response = worker.send_to("GET", "/ws/room/abcd", "clientId=me", &upgrade, "");
        assert_eq!(response.upgrade.map(|e| e.object_name()), Some("room:abcd".to_string()));
        let response = worker.send_to("GET", "/pubsub/app", "", &[], "");
        assert_eq!((response.status, &response.upgrade), (426, &None));
        assert_eq!(response.header("Access-Control-Allow-Origin"), Some("*"), "a browser may read why");
        assert_eq!(worker.send_to("GET", "/ws/room/abcd", "", &upgrade, "").status, 400);
        assert_eq!(worker.store.ops(), OpCounts::default(), "no storage touched");
    }

    #[test]
    fn socket_paths_obey_the_origin_gate() {
        let mut worker = Worker::new();
        worker.policy = QuotaPolicy::from_env(Some("https://ok.example"), None);
        let response = worker.send_to("GET", "/relay", "", &[("Upgrade", "websocket"), ("Origin", "https://evil.example")], "");
        assert_eq!((response.status, response.upgrade), (401, None));
        let response = worker.send_to("GET", "/relay", "", &[("Upgrade", "websocket"), ("Origin", "https://ok.example")], "");
        assert!(response.upgrade.is_some());
    }

    #[test]
    fn health_answers_ok_and_the_root_describes_endpoints_to_programs() {
        let mut worker = Worker::new();
        worker.policy = QuotaPolicy::from_env(Some("https://ok.example"), None);
        let health = worker.send_to("GET", "/health", "", &[], "");
        assert_eq!((health.status, health.body.as_deref()), (200, Some("OK")), "even for a request without an allowed origin");
        let worker = Worker::new();
        let described = worker.send_to("GET", "/", "", &[("Accept", "application/json")], "");
        let body: Value = serde_json::from_str(described.body.as_deref().unwrap()).unwrap();
        assert_eq!(body["websocket"]["room"], "/ws/room/:roomId?clientId=ID");
        let page = worker.send_to("GET", "/", "", &[("Accept", "text/html,application/json")], "");
        assert!(page.body.unwrap().starts_with("<!doctype html>"), "browsers still get the status page");
    }

    #[test]
    fn content_types_like_the_client_sends_are_accepted() {
        let worker = Worker::new();
        for content_type in ["application/json ", "application/json; charset=utf-8", "Application/JSON"] {
            let response = worker.send("POST", &[("Content-Type", content_type)], r#"{"r":"room-1"}"#);
            assert_eq!(response.status, 200, "{content_type}");
        }
        let response = worker.send("POST", &[("Content-Type", "text/plain")], r#"{"r":"room-1"}"#);
        assert_eq!((response.status, response.body.as_deref()), (400, Some("Expected content-type application/json")));
        assert_eq!(response.header("Access-Control-Allow-Origin"), None);
    }

    #[test]
    fn only_bodies_that_can_be_served_are_read() {
        assert!(HttpRequest::wants_body("POST", None) && HttpRequest::wants_body("DELETE", None));
        assert!(HttpRequest::wants_body("PUT", Some("DELETE")), "the reference serves any method with X-Worker-Method: DELETE");
        assert!(!HttpRequest::wants_body("PUT", None) && !HttpRequest::wants_body("PATCH", Some("POST")));
        assert!(!HttpRequest::wants_body("GET", Some("DELETE")) && !HttpRequest::wants_body("OPTIONS", None));
    }

    #[test]
    fn methods_route_like_the_reference() {
        let worker = Worker::new();
        assert_eq!(worker.send("PUT", &[("Content-Type", "application/json")], "{}").status, 405);
        assert_eq!(worker.send("PUT", &[], "{}").status, 400);
        let page = worker.send("GET", &[], "");
        assert_eq!((page.status, page.header("Content-Type")), (200, Some("text/html")));
        assert!(page.body.unwrap().contains("configured properly"));
    }

    #[test]
    fn preflight_echoes_requested_headers_only_for_real_preflights() {
        let worker = Worker::new();
        let full = worker.send(
            "OPTIONS",
            &[("Origin", "https://a.example"), ("Access-Control-Request-Method", "POST"), ("Access-Control-Request-Headers", "content-type,x-worker-method")],
            "",
        );
        assert_eq!(full.header("Access-Control-Allow-Headers"), Some("content-type,x-worker-method"));
        assert_eq!(full.header("Access-Control-Max-Age"), Some("86400"));
        let plain = worker.send("OPTIONS", &[("Origin", "https://a.example")], "");
        assert_eq!(plain.header("Allow"), Some("GET, POST, DELETE, OPTIONS"));
        assert_eq!(plain.header("Access-Control-Allow-Origin"), None);
    }

    #[test]
    fn leave_by_header_or_method() {
        let worker = Worker::new();
        for headers in [vec![("Content-Type", "application/json"), ("X-Worker-Method", "DELETE")], vec![("Content-Type", "application/json")]] {
            let method = if headers.len() == 2 { "POST" } else { "DELETE" };
            let published = worker.post(&publish(1));
            let dk = serde_json::from_str::<Value>(published.body.as_deref().unwrap()).unwrap()["dk"].as_str().unwrap().to_string();
            let mut leave = publish(1);
            leave["dk"] = json!(dk.clone());
            let response = worker.send(method, &headers, &leave.to_string());
            assert_eq!((response.status, response.body.as_deref()), (200, Some("{}")), "{method}");
            let again = worker.send(method, &headers, &leave.to_string());
            assert_eq!((again.status, again.body.as_deref()), (404, Some("No delete key")));
        }
    }

    #[test]
    fn bad_bodies_are_4xx_and_store_nothing() {
        let worker = Worker::new();
        for body in ["not json", "null", "[1]", r#"{"r": 5}"#] {
            let response = worker.send("POST", &[("Content-Type", "application/json")], body);
            assert_eq!(response.status, 400, "{body}");
            assert_eq!(response.header("Access-Control-Allow-Origin"), Some("*"));
        }
        let mut huge = publish(1);
        huge["p"] = json!([["sess-2", "x".repeat(MAX_BODY_BYTES)]]);
        assert_eq!(worker.post(&huge).status, 413);
        assert!(worker.store.keys().is_empty());
    }

    #[test]
    fn no_bucket_means_503_not_a_crash() {
        let mut worker = Worker::new();
        worker.bucket = false;
        let response = worker.post(&publish(1));
        assert_eq!(response.status, 503);
        assert!(worker.send("GET", &[], "").body.unwrap().contains("Couldn't find"));
    }

    #[test]
    fn storage_failing_past_the_budget_is_503_with_a_message() {
        let worker = Worker::new();
        worker.store.fail_next(1000);
        let response = worker.post(&publish(1));
        assert_eq!(response.status, 503);
        assert!(response.body.unwrap().contains("Storage is unavailable"));
    }

    #[test]
    fn quotas_answer_401_and_429_without_cors() {
        let mut worker = Worker::new();
        worker.policy = QuotaPolicy::from_env(Some("https://ok.example"), None);
        assert_eq!(worker.send("GET", &[("Origin", "https://ok.example")], "").status, 200);
        let denied = worker.send("GET", &[("Origin", "https://evil.example")], "");
        assert_eq!((denied.status, denied.body.as_deref()), (401, Some("Unauthorized")));

        worker.policy = QuotaPolicy::from_env(None, Some("3"));
        let statuses: Vec<u16> = (0..5).map(|_| worker.send("GET", &[("Origin", "https://a.example")], "").status).collect();
        assert_eq!(statuses, [200, 200, 200, 429, 429]);
        assert_eq!(worker.send("GET", &[], "").status, 200, "no Origin, no quota");
    }
}

//! The only code that touches the Workers runtime: the fetch entry point, the R2 adapter, and the
//! platform (clock, CSPRNG, timers, console).
//!
//! It reads the request (the body streamed, up to the cap), finds the bound bucket, and hands
//! everything to `http::handle`; then converts the answer back. No decisions are made here. The
//! only state kept across requests is the quota ledgers (see `quota`); a room's changes never wait
//! on another request's memory.

mod object;
mod r2;

use crate::http::{self, HttpRequest, HttpResponse, MAX_BODY_BYTES};
use crate::platform::{Pace, Platform};
use crate::quota::{Ledgers, QuotaPolicy};
use futures_util::StreamExt;
use r2::R2Store;
use std::cell::RefCell;
use std::future::Future;
use worker::wasm_bindgen::JsValue;
use worker::{event, Bucket, Context, Date, Delay, Env, Headers, Request, Response, Result};

/// The Durable Object binding for WebSocket signalling (wrangler.toml).
const SIGNAL_BINDING: &str = "SIGNAL";

thread_local! {
    /// Per-origin quota ledgers, kept for the life of the isolate.
    static LEDGERS: &'static RefCell<Ledgers> = Box::leak(Box::default());
}

/// The Workers runtime as the core's `Platform`.
struct Workers;

impl Platform for Workers {
    fn now_ms(&self) -> f64 {
        Date::now().as_millis() as f64
    }

    fn random(&self) -> f64 {
        let mut bytes = [0u8; 4];
        getrandom::getrandom(&mut bytes).expect("the platform CSPRNG is available");
        f64::from(u32::from_le_bytes(bytes)) / 4_294_967_296.0
    }

    /// A random string over [A-Za-z0-9] from the platform CSPRNG (unbiased: rejection sampling).
    fn random_key(&self, len: usize) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let mut key = String::with_capacity(len);
        let mut buffer = [0u8; 64];
        while key.len() < len {
            getrandom::getrandom(&mut buffer).expect("the platform CSPRNG is available");
            for byte in buffer {
                // 248 = 4 * 62: bytes at or above it would favour the first characters.
                if byte < 248 && key.len() < len {
                    key.push(ALPHABET[usize::from(byte) % ALPHABET.len()] as char);
                }
            }
        }
        key
    }

    fn sleep(&self, ms: f64) -> impl Future<Output = ()> {
        Delay::from(std::time::Duration::from_millis(ms.max(0.0) as u64))
    }

    fn log(&self, message: &str) {
        worker::console_error!("{message}");
    }
}

#[event(fetch)]
async fn fetch(mut req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let method = req.method().to_string();
    let headers: Vec<(String, String)> = req.headers().entries().collect();
    let declared_length = req.headers().get("Content-Length").ok().flatten().and_then(|n| n.parse::<usize>().ok());
    // Only bodies that can be served are read; an oversized one is refused from its declared
    // length without reading it, or cut at the cap while streaming when no length was declared.
    let worker_method = req.headers().get("X-Worker-Method").ok().flatten();
    let wants_body = HttpRequest::wants_body(&method, worker_method.as_deref().map(str::trim));
    let (body, body_over_cap) = if wants_body && declared_length.is_none_or(|n| n <= MAX_BODY_BYTES) {
        read_capped(&mut req).await
    } else {
        (Vec::new(), false)
    };
    let query = req.url().ok().and_then(|url| url.query().map(String::from)).unwrap_or_default();
    let request = HttpRequest { method, path: req.path(), query, headers, body, body_over_cap };

    let store = find_bucket(&env).map(R2Store::new);
    let policy = QuotaPolicy::from_env(var(&env, "ALLOWED_ORIGINS").as_deref(), var(&env, "ORIGIN_QUOTA").as_deref());
    let cx = http::Context {
        store: store.as_ref(),
        platform: &Workers,
        pace: Pace::from_env(var(&env, "R2_WRITE_INTERVAL_MS").as_deref()),
        policy: &policy,
        ledgers: LEDGERS.with(|ledgers| *ledgers),
    };
    let answer = http::handle(&request, cx).await;
    match &answer.upgrade {
        Some(endpoint) => open_socket(req, &env, &endpoint.object_name()).await,
        None => into_response(answer),
    }
}

/// Hand a WebSocket request to its object (`SIGNAL`, one object per room or namespace).
async fn open_socket(req: Request, env: &Env, object_name: &str) -> Result<Response> {
    let Ok(namespace) = env.durable_object(SIGNAL_BINDING) else {
        let text = "WebSocket signalling is not configured: bind the SignalHub Durable Object as SIGNAL (see INSTALL.md)";
        return Ok(Response::error(text, 501)?.with_headers(Headers::from_iter([("Access-Control-Allow-Origin", "*")])));
    };
    namespace.get_by_name(object_name)?.fetch_with_request(req).await
}

/// Read the body until it ends or passes `MAX_BODY_BYTES`; the flag says it passed.
async fn read_capped(req: &mut Request) -> (Vec<u8>, bool) {
    let Ok(mut stream) = req.stream() else { return (Vec::new(), false) };
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else { break };
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return (Vec::new(), true);
        }
        body.extend_from_slice(&chunk);
    }
    (body, false)
}

/// Like the reference, use whichever R2 bucket is bound (preferring `BUCKET`), so deployments made
/// with another binding name keep working.
fn find_bucket(env: &Env) -> Option<Bucket> {
    if let Ok(bucket) = env.bucket("BUCKET") {
        return Some(bucket);
    }
    let names = js_sys::Object::keys(&js_sys::Object::from(JsValue::from(env.clone())));
    names.iter().filter_map(|name| name.as_string()).find_map(|name| env.bucket(&name).ok())
}

/// A `[vars]` value as text, whether wrangler.toml gave a string or a number (`ORIGIN_QUOTA =
/// 10000` arrives as a number, which `Env::var` refuses).
fn var(env: &Env, name: &str) -> Option<String> {
    let value = js_sys::Reflect::get(&JsValue::from(env.clone()), &JsValue::from(name)).ok()?;
    if let Some(text) = value.as_string() {
        return Some(text);
    }
    value.as_f64().filter(|n| n.is_finite()).map(|n| if n.fract() == 0.0 { format!("{}", n as i64) } else { n.to_string() })
}

fn into_response(answer: HttpResponse) -> Result<Response> {
    let headers = Headers::new();
    for (name, value) in &answer.headers {
        headers.set(name, value)?;
    }
    let response = match answer.body {
        Some(body) => Response::ok(body)?,
        None => Response::empty()?,
    };
    Ok(response.with_status(answer.status).with_headers(headers))
}

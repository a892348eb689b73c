//! The only code that touches the Workers runtime: the fetch entry point and the R2 adapter.
//!
//! It converts the runtime's request into `http::HttpRequest`, finds the bound bucket, and hands
//! everything to `http::handle`; then converts the answer back. No decisions are made here.

mod r2;

use crate::batch::Committer;
use crate::http::{self, HttpRequest, HttpResponse, MAX_BODY_BYTES};
use crate::quota::{Ledgers, QuotaPolicy};
use r2::R2Store;
use std::cell::RefCell;
use worker::{event, Bucket, Context, Date, Delay, Env, Headers, Request, Response, Result};

thread_local! {
    /// Per-origin quota ledgers, kept for the life of the isolate.
    static LEDGERS: &'static RefCell<Ledgers> = Box::leak(Box::default());
    /// Group-commit queues, shared by the requests this isolate serves concurrently.
    static COMMITTER: &'static Committer = Box::leak(Box::default());
}

/// How often a request queued behind another's group commit checks for its result.
const GROUP_COMMIT_PAUSE: std::time::Duration = std::time::Duration::from_millis(2);

/// Length of a delete key, as the reference (24 characters of [A-Za-z0-9]).
const DELETE_KEY_LEN: usize = 24;

#[event(fetch)]
async fn fetch(mut req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let method = req.method().to_string();
    let headers: Vec<(String, String)> = req.headers().entries().collect();
    let declared_length = req.headers().get("Content-Length").ok().flatten().and_then(|n| n.parse::<usize>().ok());
    // An oversized body is refused from its declared length, without reading it.
    let body = if HttpRequest::wants_body(&method) && declared_length.is_none_or(|n| n <= MAX_BODY_BYTES) {
        req.bytes().await.unwrap_or_default()
    } else {
        Vec::new()
    };
    let request = HttpRequest { method, path: req.path(), headers, body };

    let store = find_bucket(&env).map(R2Store::new);
    let policy = QuotaPolicy::from_env(var(&env, "ALLOWED_ORIGINS").as_deref(), var(&env, "ORIGIN_QUOTA").as_deref());
    let ledgers = LEDGERS.with(|ledgers| *ledgers);
    let mut fresh_delete_key = || random_key(DELETE_KEY_LEN);
    let cx = http::Context {
        store: store.as_ref(),
        policy: &policy,
        ledgers,
        committer: COMMITTER.with(|committer| *committer),
        pause: &|| Box::pin(Delay::from(GROUP_COMMIT_PAUSE)),
        now_ms: Date::now().as_millis() as f64,
        fresh_delete_key: &mut fresh_delete_key,
    };
    into_response(http::handle(&request, cx).await)
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

use worker::wasm_bindgen::JsValue;

fn var(env: &Env, name: &str) -> Option<String> {
    env.var(name).ok().map(|value| value.to_string())
}

/// A random string over [A-Za-z0-9] from the platform CSPRNG (unbiased: rejection sampling).
fn random_key(len: usize) -> String {
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

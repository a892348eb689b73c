//! The worker's core as a bare wasm module, for measuring CPU time per request (driven by
//! `tests/cpu/run.mjs`). No wasm-bindgen, no imports: plain `extern "C"` exports over linear memory.
//!
//! `setup_room` builds a realistic room document in a `MemoryStore`, and three request bodies;
//! `poll_once` serves one of them exactly as the worker's `http::serve` does for a POST
//! (`parse_body`, `service::poll`, `PollAnswer::to_json`), without the Workers shell. A poll on a
//! `MemoryStore` never sleeps, so one poll of the future with a no-op waker completes it.
//! `part` runs one step of a request on its own, to see where the time goes.

use p2pcf_worker::layout::{index_key, Storage};
use p2pcf_worker::platform::{Pace, Platform};
use p2pcf_worker::protocol::{package_target, parse_body, Body};
use p2pcf_worker::room::{Change, Mode, Outcome, Package, Publish, RoomDoc};
use p2pcf_worker::service::{self, PollAnswer};
use p2pcf_worker::store::{MemoryStore, Store};
use serde_json::value::{to_raw_value, RawValue};
use serde_json::{json, Number, Value};
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::task::{Context, Poll, Waker};

/// Request kinds, as `poll_once` and `body_ptr` number them.
const NEWCOMER_POLL: u32 = 0;
const STEADY_POLL: u32 = 1;
const HEARTBEAT_PUBLISH: u32 = 2;
/// The same heartbeat carrying only the packages its row holds in the stored document (in a
/// forming room at MAX_ROOM_BYTES, a heartbeat with all its packages is refused: this one lands).
const HEARTBEAT_AS_STORED: u32 = 3;

/// Scenarios, as `setup_room` numbers them.
const MID_HANDSHAKE: u32 = 0;
const FORMING: u32 = 1;
const FORMING_UNBOUNDED: u32 = 2;

const ROOM: &str = "cpu-bench-room-7f3a";
const EXPIRY_MS: f64 = 120_000.0; // p2pcf's default stateExpirationIntervalMs

// ---------------------------------------------------------------------------------------------
// Platform: a fixed clock set per call, deterministic randomness, sleeping is a bug here.

struct BenchPlatform {
    now: Cell<f64>,
    rng: Cell<u64>,
    slept: Cell<u32>,
}

impl BenchPlatform {
    fn next_u64(&self) -> u64 {
        // xorshift64*
        let mut x = self.rng.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

impl Platform for BenchPlatform {
    fn now_ms(&self) -> f64 {
        self.now.get()
    }

    fn random(&self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn random_key(&self, len: usize) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        (0..len).map(|_| ALPHABET[(self.next_u64() % 62) as usize] as char).collect()
    }

    fn sleep(&self, _ms: f64) -> impl Future<Output = ()> {
        self.slept.set(self.slept.get() + 1);
        std::future::ready(())
    }

    fn log(&self, _message: &str) {}
}

/// Run a future that must complete without waiting (a request on a `MemoryStore`).
fn run<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(value) => value,
        Poll::Pending => panic!("a request on a MemoryStore went pending"),
    }
}

// ---------------------------------------------------------------------------------------------
// Realistic p2pcf data, deterministic.

struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// p2pcf's `randomstring`: [A-Za-z0-9].
    fn string(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        (0..len).map(|_| ALPHABET[(self.next() % 62) as usize] as char).collect()
    }

    fn hex(&mut self, len: usize) -> String {
        (0..len).map(|_| b"0123456789abcdef"[(self.next() % 16) as usize] as char).collect()
    }

    /// A SHA-256 DTLS fingerprint in base64: 44 characters.
    fn dtls(&mut self) -> String {
        let bytes: Vec<u8> = (0..32).map(|_| self.next() as u8).collect();
        base64(&bytes)
    }

    fn public_ipv4(&mut self) -> String {
        format!("{}.{}.{}.{}", 80 + self.next() % 100, self.next() % 256, self.next() % 256, 1 + self.next() % 254)
    }

    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low)
    }

    /// Three ICE candidates as Chrome trickles them (mDNS host, srflx, TCP host): 110-150 chars each.
    fn candidates(&mut self, ufrag: &str, public_ip: &str) -> Vec<String> {
        let port = self.between(40_000, 65_000);
        let mdns = format!("{}-{}-{}-{}-{}.local", self.hex(8), self.hex(4), self.hex(4), self.hex(4), self.hex(12));
        vec![
            format!("candidate:{} 1 udp 2113937151 {mdns} {port} typ host generation 0 ufrag {ufrag} network-cost 999", self.between(1 << 30, 1 << 32)),
            format!(
                "candidate:{} 1 udp 1677729535 {public_ip} {} typ srflx raddr 0.0.0.0 rport 0 generation 0 ufrag {ufrag} network-cost 999",
                self.between(1 << 30, 1 << 32),
                self.between(1024, 65_000)
            ),
            format!("candidate:{} 1 tcp 1518280447 {mdns} 9 typ host tcptype active generation 0 ufrag {ufrag}", self.between(1 << 30, 1 << 32)),
        ]
    }
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One simulated client.
#[derive(Clone)]
struct Peer {
    context: String,
    session: String,
    client: String,
    dtls: String,
    joined_at: f64,
    ip: String,
    /// Data timestamp of its last publish (`t`).
    t: f64,
}

impl Peer {
    fn new(g: &mut Gen, n: usize, joined_at: f64, t: f64) -> Peer {
        Peer {
            context: g.string(20),
            session: g.string(20),
            client: format!("user-{n:03}-{}", g.string(4)),
            dtls: g.dtls(),
            joined_at,
            ip: g.public_ipv4(),
            t,
        }
    }

    fn data(&self) -> Value {
        json!([self.session, self.client, false, self.dtls, self.joined_at as u64, [self.ip]])
    }

    /// The package an answering peer (A, p2pcf's "I am peer A") sends: its ufrag, pwd, DTLS.
    fn answer_to(&self, g: &mut Gen, target: &Peer, sent_at: f64) -> Value {
        let ufrag = g.string(12);
        json!([target.session, self.session, ufrag, g.string(32), self.dtls, null, null, sent_at as u64, g.candidates(&ufrag, &self.ip)])
    }

    /// The package an initiating peer (B) sends: the ufrag and pwd it made up for the target.
    fn offer_to(&self, g: &mut Gen, target: &Peer, sent_at: f64) -> Value {
        let ufrag = g.string(12);
        json!([target.session, self.session, null, null, null, ufrag, g.string(32), sent_at as u64, g.candidates(&ufrag, &self.ip)])
    }

    /// The body the p2pcf client sends (`JSON.stringify` of `{r, k, d, t, x}`, and `p` when it
    /// publishes, in that order; times are integers).
    fn body(&self, packages: Option<&[Value]>) -> Vec<u8> {
        let text = |v: &Value| serde_json::to_string(v).expect("serializes");
        let mut body = format!(
            r#"{{"r":{},"k":{},"d":{},"t":{},"x":{}"#,
            text(&json!(ROOM)),
            text(&json!(self.context)),
            text(&self.data()),
            self.t as u64,
            EXPIRY_MS as u64
        );
        if let Some(packages) = packages {
            body.push_str(r#","p":"#);
            body.push_str(&text(&Value::Array(packages.to_vec())));
        }
        body.push('}');
        body.into_bytes()
    }

    fn publish(&self, packages: &[Value], g: &mut Gen) -> Change {
        Change::Publish(Publish {
            k: self.context.clone(),
            s: self.session.clone(),
            d: raw(&self.data()),
            t: number(self.t),
            x: EXPIRY_MS,
            p: packages.iter().map(|p| Package(package_target(p).expect("a target").to_owned(), raw(p))).collect(),
            fresh_dk: g.string(24),
        })
    }
}

fn raw(value: &Value) -> Box<RawValue> {
    to_raw_value(value).expect("serializes")
}

/// A time as the client sends it: an integer.
fn number(t: f64) -> Number {
    Number::from(t as u64)
}

// ---------------------------------------------------------------------------------------------
// The bench state.

struct Bench {
    store: MemoryStore,
    /// The stored document as set up; `reset` puts it back.
    doc: Vec<u8>,
    bodies: [Vec<u8>; 4],
    rows: u32,
    packages: u32,
    refused: u32,
    answer: String,
    parts: Option<Parts>,
}

/// Precomputed inputs of each step, for `part`.
struct Parts {
    body: Vec<u8>,
    parsed: Body,
    doc: RoomDoc,
    answer: PollAnswer,
    change: Option<Change>,
    packages: Vec<Value>,
    next: RoomDoc,
}

thread_local! {
    static PLATFORM: &'static BenchPlatform = Box::leak(Box::new(BenchPlatform { now: Cell::new(0.0), rng: Cell::new(0x9E37_79B9_7F4A_7C15), slept: Cell::new(0) }));
    static BENCH: RefCell<Option<Bench>> = const { RefCell::new(None) };
}

fn platform() -> &'static BenchPlatform {
    PLATFORM.with(|p| *p)
}

/// Build the room at `now_ms`; the documents were written 5 s earlier (so a publish's write slot
/// is open and it writes directly, as a heartbeat in a quiet room does).
fn build(peers: usize, scenario: u32, now_ms: f64) -> Bench {
    let mut g = Gen(0x2545_F491_4F6C_DD1D ^ (peers as u64) << 8 ^ u64::from(scenario));
    let written = now_ms - 5_000.0;
    let mut refused = 0;
    let (doc, bodies) = match scenario {
        MID_HANDSHAKE => {
            // peers-1 steady peers joined over the last 10 minutes, heartbeats within the last 90 s;
            // the newcomer joined 4 s ago; everyone's packages have been exchanged since.
            let steady: Vec<Peer> = (0..peers - 1)
                .map(|n| {
                    let joined = now_ms - g.between(60_000, 600_000) as f64;
                    let t = written - g.between(0, 85_000) as f64;
                    Peer::new(&mut g, n, joined, t)
                })
                .collect();
            let newcomer = Peer::new(&mut g, peers - 1, now_ms - 4_000.0, written - 1_000.0);
            let mut doc = RoomDoc::default();
            for peer in &steady {
                check(doc.apply(&peer.publish(&[], &mut g), Mode::Direct, written - 3_000.0), &mut refused);
            }
            let offers: Vec<Value> = steady.iter().map(|peer| newcomer.offer_to(&mut g, peer, written - 2_000.0)).collect();
            check(doc.apply(&newcomer.publish(&offers, &mut g), Mode::Direct, written - 1_000.0), &mut refused);
            let mut heartbeat = None;
            for (n, peer) in steady.iter().enumerate() {
                let mut peer = peer.clone();
                peer.t = written - (n % 7) as f64; // its publish carrying the answer, after the newcomer's
                let answer = vec![peer.answer_to(&mut g, &newcomer, peer.t)];
                check(doc.apply(&peer.publish(&answer, &mut g), Mode::Direct, written), &mut refused);
                if n == 0 {
                    heartbeat = Some((peer, answer));
                }
            }
            doc.written_at = written;
            let (steady0, answer) = heartbeat.expect("at least one steady peer");
            let bodies = requests(&doc, &newcomer, &steady0, &answer, now_ms);
            (doc, bodies)
        }
        FORMING | FORMING_UNBOUNDED => {
            // all peers joined within the last minute; every pair has exchanged packages
            let mut all: Vec<Peer> = (0..peers)
                .map(|n| {
                    let joined = now_ms - g.between(10_000, 60_000) as f64;
                    Peer::new(&mut g, n, joined, joined + 1_000.0)
                })
                .collect();
            all.sort_by(|a, b| a.joined_at.total_cmp(&b.joined_at));
            let sent: Vec<Vec<Value>> = all
                .iter()
                .enumerate()
                .map(|(i, peer)| {
                    let sent_at = written - g.between(0, 8_000) as f64;
                    all.iter()
                        .enumerate()
                        .filter(|(j, _)| *j != i)
                        .map(|(j, other)| if i < j { peer.answer_to(&mut g, other, sent_at) } else { peer.offer_to(&mut g, other, sent_at) })
                        .collect()
                })
                .collect();
            for (n, peer) in all.iter_mut().enumerate() {
                peer.t = written - (n % 13) as f64;
            }
            // everyone joins first (no packages yet)
            let mut doc = RoomDoc::default();
            for peer in &all {
                let mut joined = peer.clone();
                joined.t = peer.joined_at + 1_000.0;
                check(doc.apply(&joined.publish(&[], &mut g), Mode::Direct, written - 10_000.0), &mut refused);
            }
            if scenario == FORMING {
                // then each publishes its packages through the room rules, as the worker would have
                // stored them (bounded by MAX_ROOM_BYTES: packages shed, publishes refused)
                for (peer, packages) in all.iter().zip(&sent) {
                    check(doc.apply(&peer.publish(packages, &mut g), Mode::Direct, written), &mut refused);
                }
            } else {
                // every package kept: N x (N-1), past MAX_ROOM_BYTES, so the worker never stores
                // this. Each row is made by the room rules on its own, then the rows are put together.
                let joined = doc.clone();
                doc.peers = all
                    .iter()
                    .zip(&sent)
                    .map(|(peer, packages)| {
                        let mut alone = joined.clone();
                        check(alone.apply(&peer.publish(packages, &mut g), Mode::Direct, written), &mut refused);
                        let at = alone.peers.iter().position(|row| row.k == peer.context).expect("its row");
                        alone.peers.swap_remove(at)
                    })
                    .collect();
            }
            doc.written_at = written;
            let newest = all.last().expect("peers >= 1").clone();
            let bodies = requests(&doc, &newest, &all[0], &sent[0], now_ms);
            (doc, bodies)
        }
        _ => panic!("unknown scenario {scenario}"),
    };
    let store = MemoryStore::new();
    let bytes = doc.to_json();
    store.force_put(&index_key(ROOM), &bytes);
    Bench {
        store,
        doc: bytes,
        bodies,
        rows: doc.peers.len() as u32,
        packages: doc.peers.iter().map(|row| row.p.len() as u32).sum(),
        refused,
        answer: String::new(),
        parts: None,
    }
}

fn check(outcome: Outcome, refused: &mut u32) {
    if let Outcome::Refused(_) = outcome {
        *refused += 1;
    }
}

/// The newcomer's and a steady peer's identified polls, with the `t` their rows hold (so the poll
/// finds nothing to land: one read), and the steady peer's next heartbeat (`t` 30 s on,
/// republishing the packages its client still holds, or those its row holds).
fn requests(doc: &RoomDoc, newcomer: &Peer, steady: &Peer, steady_packages: &[Value], now_ms: f64) -> [Vec<u8>; 4] {
    let stored = |peer: &Peer| {
        let row = doc.row(&peer.context, now_ms).expect("the peer has a live row");
        Peer { t: row.t.as_f64().expect("a number"), ..peer.clone() }
    };
    let (newcomer, steady) = (stored(newcomer), stored(steady));
    let mut beat = steady.clone();
    beat.t += 30_000.0;
    let row = doc.row(&steady.context, now_ms).expect("a live row");
    let stored: Vec<Value> = row.p.iter().map(|p| serde_json::from_str(p.1.get()).expect("stored JSON")).collect();
    let mut bodies: [Vec<u8>; 4] = Default::default();
    bodies[NEWCOMER_POLL as usize] = newcomer.body(None);
    bodies[STEADY_POLL as usize] = steady.body(None);
    bodies[HEARTBEAT_PUBLISH as usize] = beat.body(Some(steady_packages));
    bodies[HEARTBEAT_AS_STORED as usize] = beat.body(Some(&stored));
    bodies
}

fn with_bench<T>(f: impl FnOnce(&mut Bench) -> T) -> T {
    BENCH.with(|b| f(b.borrow_mut().as_mut().expect("setup_room first")))
}

/// Serve one POST body as `http::serve` does: parse, poll (or publish), the answer's JSON.
fn serve(store: &MemoryStore, body: &[u8], now_ms: f64) -> Result<String, u16> {
    let platform = platform();
    platform.now.set(now_ms);
    let body = parse_body(body, now_ms).map_err(|r| r.status)?;
    let storage = Storage::new(store, platform, Pace::default());
    match run(service::poll(&storage, &body)) {
        Ok(answer) => Ok(answer.to_json()),
        Err(p2pcf_worker::layout::Failure::Rejected(r)) => Err(r.status),
        Err(p2pcf_worker::layout::Failure::Unavailable(_)) => Err(503),
    }
}

// ---------------------------------------------------------------------------------------------
// Exports.

#[no_mangle]
pub extern "C" fn alloc(len: usize) -> *mut u8 {
    let mut buffer = Vec::<u8>::with_capacity(len);
    let ptr = buffer.as_mut_ptr();
    std::mem::forget(buffer);
    ptr
}

/// # Safety
/// `ptr` and `len` come from `alloc(len)`, not yet given to `poll_once` or freed.
#[no_mangle]
pub unsafe extern "C" fn dealloc(ptr: *mut u8, len: usize) {
    drop(Vec::from_raw_parts(ptr, 0, len));
}

/// Build a room of `peers` peers in `scenario` (0 mid-handshake, 1 forming, 2 forming unbounded)
/// at `now_ms`, and the three request bodies. Returns the stored document's size in bytes.
#[no_mangle]
pub extern "C" fn setup_room(peers: u32, scenario: u32, now_ms: f64) -> u32 {
    let bench = build(peers.max(2) as usize, scenario, now_ms);
    let size = bench.doc.len() as u32;
    BENCH.with(|b| *b.borrow_mut() = Some(bench));
    size
}

/// Put the stored document back as `setup_room` made it (after a publish).
#[no_mangle]
pub extern "C" fn reset() {
    with_bench(|b| b.store.force_put(&index_key(ROOM), &b.doc));
}

#[no_mangle]
pub extern "C" fn doc_rows() -> u32 {
    with_bench(|b| b.rows)
}

#[no_mangle]
pub extern "C" fn doc_packages() -> u32 {
    with_bench(|b| b.packages)
}

/// Publishes refused while building the room (the forming room passing MAX_ROOM_BYTES).
#[no_mangle]
pub extern "C" fn setup_refused() -> u32 {
    with_bench(|b| b.refused)
}

/// The stored document's size now (after a publish, the size it wrote).
#[no_mangle]
pub extern "C" fn stored_len() -> u32 {
    with_bench(|b| b.store.peek(&index_key(ROOM)).map_or(0, |d| d.len() as u32))
}

#[no_mangle]
pub extern "C" fn body_ptr(kind: u32) -> *const u8 {
    with_bench(|b| b.bodies[kind as usize].as_ptr())
}

#[no_mangle]
pub extern "C" fn body_len(kind: u32) -> u32 {
    with_bench(|b| b.bodies[kind as usize].len() as u32)
}

/// Serve the request body at `ptr` (from `alloc(len)`; taken over and freed here), as the worker
/// serves a POST. Returns the answer's length (read it at `answer_ptr()`), or `0x8000_0000 |
/// status` if it was refused, or `0xC000_0000` if the request slept (it must not).
///
/// # Safety
/// `ptr` and `len` come from `alloc(len)` and `len` bytes were written there.
#[no_mangle]
pub unsafe extern "C" fn poll_once(ptr: *mut u8, len: usize, now_ms: f64) -> u32 {
    let body = Vec::from_raw_parts(ptr, len, len); // the shell's body Vec
    let slept_before = platform().slept.get();
    let result = with_bench(|b| {
        let answer = serve(&b.store, &body, now_ms)?;
        let len = answer.len() as u32;
        b.answer = answer; // kept for JS to read; the previous answer is dropped here
        Ok::<u32, u16>(len)
    });
    drop(body);
    if platform().slept.get() != slept_before {
        return 0xC000_0000;
    }
    match result {
        Ok(len) => len,
        Err(status) => 0x8000_0000 | u32::from(status),
    }
}

#[no_mangle]
pub extern "C" fn answer_ptr() -> *const u8 {
    with_bench(|b| b.answer.as_ptr())
}

/// Prepare `part` for request `kind` at `now_ms`: run its steps once and keep each step's input.
#[no_mangle]
pub extern "C" fn prepare_parts(kind: u32, now_ms: f64) -> u32 {
    platform().now.set(now_ms);
    with_bench(|b| {
        let body = b.bodies[kind as usize].clone();
        let parsed = parse_body(&body, now_ms).expect("a valid body");
        let doc = RoomDoc::from_json(&b.doc).expect("parses");
        let session = parsed.peer.as_ref().map(|p| p.data.session_id.as_str());
        let view = doc.view(parsed.context.as_deref(), session, now_ms);
        let answer = PollAnswer { view, delete_key: None };
        let packages = parsed.packages.clone().unwrap_or_default();
        let change = parsed.peer.as_ref().map(|peer| {
            Change::Publish(Publish {
                k: peer.context.clone(),
                s: peer.data.session_id.clone(),
                d: raw(&Value::Array(peer.data.values.clone())),
                t: peer.timestamp.clone(),
                x: peer.expiry_ms,
                p: packages.iter().filter_map(|p| Some(Package(package_target(p)?.to_owned(), raw(p)))).collect(),
                fresh_dk: "x".repeat(24),
            })
        });
        let mut next = doc.clone();
        if let Some(change) = &change {
            next.apply(change, Mode::Direct, now_ms);
            next.written_at = now_ms;
        }
        b.parts = Some(Parts { body, parsed, doc, answer, change, packages, next });
    });
    0
}

/// One step of a request, on the inputs `prepare_parts` kept (its result dropped, as the request
/// drops it). Returns something derived from the result so the work cannot be optimised away.
///
/// 0 parse_body; 1 store.get (copy of the stored bytes); 2 RoomDoc::from_json; 3 clone of the
/// parsed document (`service::poll` clones `Loaded` for `land_lost_publish`); 4 RoomDoc::view;
/// 5 PollAnswer::to_json; 6 the publish's packages as raw JSON (`wire_packages`); 7 clone +
/// RoomDoc::apply (prune, shed) as `commit`; 8 RoomDoc::to_json of the new document (the write).
#[no_mangle]
pub extern "C" fn part(step: u32, now_ms: f64) -> u32 {
    with_bench(|b| {
        let p = b.parts.as_ref().expect("prepare_parts first");
        match step {
            0 => parse_body(&p.body, now_ms).map_or(0, |body| body.room.len() as u32),
            1 => run(b.store.get(&index_key(ROOM))).ok().flatten().map_or(0, |v| v.body.len() as u32),
            2 => RoomDoc::from_json(&b.doc).map_or(0, |doc| doc.peers.len() as u32),
            3 => p.doc.clone().peers.len() as u32,
            4 => {
                let session = p.parsed.peer.as_ref().map(|peer| peer.data.session_id.as_str());
                p.doc.view(p.parsed.context.as_deref(), session, now_ms).packages.len() as u32
            }
            5 => p.answer.to_json().len() as u32,
            6 => p.packages.iter().filter_map(|v| Some(Package(package_target(v)?.to_owned(), raw(v)))).count() as u32,
            7 => {
                let mut next = p.doc.clone();
                match &p.change {
                    Some(change) => matches!(next.apply(change, Mode::Direct, now_ms), Outcome::Changed { .. }) as u32,
                    None => 0,
                }
            }
            8 => p.next.to_json().len() as u32,
            _ => 0,
        }
    })
}

/// The store's operation counts so far, one byte each: get | put << 8 | list << 16 | delete << 24.
#[no_mangle]
pub extern "C" fn store_ops() -> u32 {
    with_bench(|b| {
        let ops = b.store.ops();
        (ops.get & 0xff) | (ops.put & 0xff) << 8 | (ops.list & 0xff) << 16 | (ops.delete & 0xff) << 24
    })
}

//! The storage the worker needs, as a trait small enough to fake.
//!
//! Four operations are enough for a room that can never lose a write: read with a version (etag),
//! write only if the version is still the one read (or the key is still absent), list a prefix,
//! and delete. R2 provides all four (`src/wasm/r2.rs`); `MemoryStore` provides them in tests, and
//! can fail (a share of operations, or the next few), let another writer slip in between a read
//! and a write, report an error for a write that landed, and refuse writes to one key less than a
//! second apart as R2 does, to prove the commit path against all of them.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::rc::Rc;

/// A stored value and the version it was read at.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned {
    pub body: Vec<u8>,
    pub etag: String,
}

/// When a conditional write may proceed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    /// Only if the key does not exist yet (create).
    Absent,
    /// Only if the stored version is still this etag (compare-and-swap).
    Matches(String),
}

/// Storage failed (network, rate limit, outage). For a write the outcome is unknown: it may have
/// landed (R2 can report an error for a write it made).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "storage error: {}", self.0)
    }
}

/// Key-value storage with versioned, conditional writes.
#[allow(async_fn_in_trait)] // single-threaded (wasm32): futures need not be Send
pub trait Store {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError>;
    /// Write `body` if `condition` holds: `Ok(Some(new etag))`, or `Ok(None)` if it did not hold.
    async fn put_if(&self, key: &str, body: Vec<u8>, condition: Option<Precondition>) -> Result<Option<String>, StoreError>;
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// Keys under `prefix`, in lexicographic order (at most 1000: one R2 list call).
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError>;
    /// Operations performed so far by this handle.
    fn ops(&self) -> OpCounts;
}

/// Storage operations, counted the way R2 bills them (get: Class B; put, list: Class A; delete: free).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpCounts {
    pub get: u32,
    pub put: u32,
    pub delete: u32,
    pub list: u32,
}

impl OpCounts {
    /// The `Server-Timing` entry every answer carries, so tests and benchmarks can count.
    pub fn server_timing(&self) -> String {
        format!("r2;desc=\"get={} put={} delete={} list={}\"", self.get, self.put, self.delete, self.list)
    }
}

/// Shared counter used by store implementations.
#[derive(Debug, Default)]
pub struct OpCounter(Cell<OpCounts>);

impl OpCounter {
    pub fn count(&self, op: impl FnOnce(&mut OpCounts)) {
        let mut counts = self.0.get();
        op(&mut counts);
        self.0.set(counts);
    }

    pub fn get(&self) -> OpCounts {
        self.0.get()
    }
}

/// In-memory store for tests, with R2's failure modes on demand.
#[derive(Default)]
pub struct MemoryStore {
    objects: RefCell<BTreeMap<String, Versioned>>,
    next_version: Cell<u64>,
    counter: OpCounter,
    failures: Cell<u32>,
    failure_share: Cell<f64>,
    ghost_writes: Cell<u32>,
    rng: Cell<u64>,
    rate_limit: RefCell<Option<RateLimit>>,
    /// Successful writes per key, at the rate limit's clock (when one is set).
    writes: RefCell<HashMap<String, Vec<f64>>>,
    #[allow(clippy::type_complexity)]
    before_put: RefCell<Option<Box<dyn FnMut(&MemoryStore)>>>,
}

struct RateLimit {
    interval_ms: f64,
    clock: Rc<dyn Fn() -> f64>,
    enforce: bool,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// The next `n` operations fail with a storage error.
    pub fn fail_next(&self, n: u32) {
        self.failures.set(n);
    }

    /// From now on, each operation fails with probability `share` (deterministic for a `seed`).
    pub fn fail_share(&self, share: f64, seed: u64) {
        self.failure_share.set(share);
        self.rng.set(seed | 1);
    }

    /// The next `n` writes land but report an error, as R2 sometimes does.
    pub fn ghost_next_writes(&self, n: u32) {
        self.ghost_writes.set(n);
    }

    /// Refuse (429-like error) any write to a key less than `interval_ms` after its last
    /// successful write, by `clock`: R2's per-key write limit.
    pub fn limit_writes(&self, interval_ms: f64, clock: Rc<dyn Fn() -> f64>) {
        *self.rate_limit.borrow_mut() = Some(RateLimit { interval_ms, clock, enforce: true });
    }

    /// Record write times by `clock` without refusing any, to check a writer's own spacing.
    pub fn record_writes(&self, clock: Rc<dyn Fn() -> f64>) {
        *self.rate_limit.borrow_mut() = Some(RateLimit { interval_ms: 0.0, clock, enforce: false });
    }

    /// The most successful writes any one key took within `window_ms` (needs `limit_writes`).
    pub fn max_writes_within(&self, window_ms: f64) -> usize {
        let writes = self.writes.borrow();
        writes
            .values()
            .map(|times| times.iter().map(|start| times.iter().filter(|t| **t >= *start && **t < start + window_ms).count()).max().unwrap_or(0))
            .max()
            .unwrap_or(0)
    }

    /// Successful writes of `key` so far (needs `limit_writes`).
    pub fn writes_of(&self, key: &str) -> usize {
        self.writes.borrow().get(key).map_or(0, Vec::len)
    }

    /// Run `hook` before each conditional write is checked (it may write to the store itself).
    pub fn before_put(&self, hook: impl FnMut(&MemoryStore) + 'static) {
        *self.before_put.borrow_mut() = Some(Box::new(hook));
    }

    /// Write unconditionally, without counting (test setup and hooks).
    pub fn force_put(&self, key: &str, body: &[u8]) {
        let etag = self.new_etag();
        self.objects.borrow_mut().insert(key.to_string(), Versioned { body: body.to_vec(), etag });
        self.record_write(key);
    }

    pub fn peek(&self, key: &str) -> Option<Vec<u8>> {
        self.objects.borrow().get(key).map(|v| v.body.clone())
    }

    pub fn keys(&self) -> Vec<String> {
        self.objects.borrow().keys().cloned().collect()
    }

    fn new_etag(&self) -> String {
        let version = self.next_version.get() + 1;
        self.next_version.set(version);
        format!("v{version}")
    }

    fn record_write(&self, key: &str) {
        if let Some(limit) = &*self.rate_limit.borrow() {
            self.writes.borrow_mut().entry(key.to_string()).or_default().push((limit.clock)());
        }
    }

    fn rate_limited(&self, key: &str) -> bool {
        let limit = self.rate_limit.borrow();
        let Some(limit) = limit.as_ref().filter(|limit| limit.enforce) else { return false };
        let now = (limit.clock)();
        self.writes.borrow().get(key).and_then(|times| times.last()).is_some_and(|last| now - last < limit.interval_ms)
    }

    fn next_random(&self) -> f64 {
        next_unit(&self.rng)
    }

    fn maybe_fail(&self) -> Result<(), StoreError> {
        let left = self.failures.get();
        if left > 0 {
            self.failures.set(left - 1);
            return Err(StoreError("injected failure".into()));
        }
        if self.failure_share.get() > 0.0 && self.next_random() < self.failure_share.get() {
            return Err(StoreError("injected transient failure".into()));
        }
        Ok(())
    }
}

/// The next number in `[0, 1)` of a xorshift64* sequence kept in `state` (test doubles only: not
/// for anything that must be unguessable).
pub fn next_unit(state: &Cell<u64>) -> f64 {
    let mut x = state.get();
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    state.set(x);
    (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
}

impl Store for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        self.counter.count(|c| c.get += 1);
        self.maybe_fail()?;
        Ok(self.objects.borrow().get(key).cloned())
    }

    async fn put_if(&self, key: &str, body: Vec<u8>, condition: Option<Precondition>) -> Result<Option<String>, StoreError> {
        self.counter.count(|c| c.put += 1);
        self.maybe_fail()?;
        let hook = self.before_put.borrow_mut().take();
        if let Some(mut hook) = hook {
            hook(self);
            self.before_put.borrow_mut().get_or_insert(hook);
        }
        if self.rate_limited(key) {
            return Err(StoreError("429: writes to this key are limited to one per second".into()));
        }
        let current = self.objects.borrow().get(key).map(|v| v.etag.clone());
        let holds = match (&condition, &current) {
            (None, _) => true,
            (Some(Precondition::Absent), current) => current.is_none(),
            (Some(Precondition::Matches(wanted)), Some(etag)) => wanted == etag,
            (Some(Precondition::Matches(_)), None) => false,
        };
        if !holds {
            return Ok(None);
        }
        let etag = self.new_etag();
        self.objects.borrow_mut().insert(key.to_string(), Versioned { body, etag: etag.clone() });
        self.record_write(key);
        let ghosts = self.ghost_writes.get();
        if ghosts > 0 {
            self.ghost_writes.set(ghosts - 1);
            return Err(StoreError("injected error after a write that landed".into()));
        }
        Ok(Some(etag))
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.counter.count(|c| c.delete += 1);
        self.maybe_fail()?;
        self.objects.borrow_mut().remove(key);
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.counter.count(|c| c.list += 1);
        self.maybe_fail()?;
        Ok(self.objects.borrow().keys().filter(|k| k.starts_with(prefix)).take(1000).cloned().collect())
    }

    fn ops(&self) -> OpCounts {
        self.counter.get()
    }
}

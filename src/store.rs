//! The storage the worker needs, as a trait small enough to fake.
//!
//! Three operations are enough for a room that can never lose a write: read with a version (etag),
//! write only if the version is still the one read (or the key is still absent), and delete.
//! R2 provides all three (`src/wasm/r2.rs`); `MemoryStore` provides them in tests, and can fail or
//! let another writer slip in between a read and a write, to prove the retry logic.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;

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

/// Storage failed (network, limits, outage): the request is answered 503 and nothing is changed.
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

/// In-memory store for tests. `fail_next` makes operations fail; `before_put` runs just before a
/// write lands, to simulate another writer winning the race.
#[derive(Default)]
pub struct MemoryStore {
    objects: RefCell<HashMap<String, Versioned>>,
    next_version: Cell<u64>,
    counter: OpCounter,
    failures: Cell<u32>,
    #[allow(clippy::type_complexity)]
    before_put: RefCell<Option<Box<dyn FnMut(&MemoryStore)>>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// The next `n` operations fail with a storage error.
    pub fn fail_next(&self, n: u32) {
        self.failures.set(n);
    }

    /// Run `hook` before each conditional write is checked (it may write to the store itself).
    pub fn before_put(&self, hook: impl FnMut(&MemoryStore) + 'static) {
        *self.before_put.borrow_mut() = Some(Box::new(hook));
    }

    /// Write unconditionally, without counting (test setup and hooks).
    pub fn force_put(&self, key: &str, body: &[u8]) {
        let etag = self.new_etag();
        self.objects.borrow_mut().insert(key.to_string(), Versioned { body: body.to_vec(), etag });
    }

    pub fn peek(&self, key: &str) -> Option<Vec<u8>> {
        self.objects.borrow().get(key).map(|v| v.body.clone())
    }

    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.objects.borrow().keys().cloned().collect();
        keys.sort();
        keys
    }

    fn new_etag(&self) -> String {
        let version = self.next_version.get() + 1;
        self.next_version.set(version);
        format!("v{version}")
    }

    fn maybe_fail(&self) -> Result<(), StoreError> {
        let left = self.failures.get();
        if left > 0 {
            self.failures.set(left - 1);
            return Err(StoreError("injected failure".into()));
        }
        Ok(())
    }
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
        Ok(Some(etag))
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.counter.count(|c| c.delete += 1);
        self.maybe_fail()?;
        self.objects.borrow_mut().remove(key);
        Ok(())
    }

    fn ops(&self) -> OpCounts {
        self.counter.get()
    }
}

//! Test helpers: a virtual-time executor and platform, and a store that interleaves requests.
//!
//! The worker is single-threaded and its futures are driven by the JS event loop; in native tests
//! we drive them by hand. `block_on` polls until every future waits on a timer, then jumps the
//! virtual clock to the earliest one, so seconds of backoff and rate limits run in microseconds
//! and deterministically. `YieldingStore` suspends every operation once, so requests run under
//! `join_all` interleave the way concurrent requests do: all read, then all write.

use crate::platform::Platform;
use crate::store::{OpCounts, Precondition, Store, StoreError, Versioned};
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

thread_local! {
    /// The earliest wake-up time of a pending sleep since the executor last looked.
    static NEXT_WAKE: Cell<Option<f64>> = const { Cell::new(None) };
    /// Whether some future yielded (it can make progress without time passing).
    static YIELDED: Cell<bool> = const { Cell::new(false) };
}

/// Run a future to completion on `platform`'s virtual clock.
pub fn block_on<F: Future>(platform: &TestPlatform, future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        NEXT_WAKE.set(None);
        YIELDED.set(false);
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        if YIELDED.get() {
            continue;
        }
        match NEXT_WAKE.get() {
            Some(at) => platform.clock.set(platform.clock.get().max(at)),
            None => panic!("deadlock: nothing is waiting on a timer or yielding"),
        }
    }
}

/// Poll all futures round-robin until every one is done; outputs in input order.
pub async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(move |cx| {
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                if let Poll::Ready(value) = future.as_mut().poll(cx) {
                    *output = Some(value);
                }
            }
        }
        if outputs.iter().all(Option::is_some) {
            Poll::Ready(outputs.iter_mut().map(|o| o.take().expect("checked above")).collect())
        } else {
            Poll::Pending
        }
    })
    .await
}

/// Yield to the executor once.
pub async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|_| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            YIELDED.set(true);
            Poll::Pending
        }
    })
    .await
}

/// A platform on a virtual clock, with deterministic randomness and numbered keys.
pub struct TestPlatform {
    pub clock: Rc<Cell<f64>>,
    rng: Cell<u64>,
    keys: Cell<u32>,
    last_key: RefCell<String>,
    pub logs: RefCell<Vec<String>>,
}

impl TestPlatform {
    pub fn at(now_ms: f64) -> Self {
        TestPlatform { clock: Rc::new(Cell::new(now_ms)), rng: Cell::new(0x9E37_79B9_7F4A_7C15), keys: Cell::new(0), last_key: RefCell::default(), logs: RefCell::default() }
    }

    /// The clock as a function, for `MemoryStore::limit_writes`.
    pub fn clock_fn(&self) -> Rc<dyn Fn() -> f64> {
        let clock = self.clock.clone();
        Rc::new(move || clock.get())
    }

    pub fn advance(&self, ms: f64) {
        self.clock.set(self.clock.get() + ms);
    }

    /// The last key `random_key` made.
    pub fn last_key(&self) -> String {
        self.last_key.borrow().clone()
    }
}

impl Platform for TestPlatform {
    fn now_ms(&self) -> f64 {
        self.clock.get()
    }

    fn random(&self) -> f64 {
        crate::store::next_unit(&self.rng)
    }

    fn random_key(&self, len: usize) -> String {
        let n = self.keys.get() + 1;
        self.keys.set(n);
        // [A-Za-z0-9] from the deterministic generator, like the platform's (whose order matters:
        // pending keys sort by their nonce after their time)
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let key: String = (0..len).map(|_| ALPHABET[(self.random() * ALPHABET.len() as f64) as usize % ALPHABET.len()] as char).collect();
        *self.last_key.borrow_mut() = key.clone();
        key
    }

    fn sleep(&self, ms: f64) -> impl Future<Output = ()> {
        let wake_at = self.clock.get() + ms.max(0.0);
        let clock = self.clock.clone();
        std::future::poll_fn(move |_| {
            if clock.get() >= wake_at {
                Poll::Ready(())
            } else {
                NEXT_WAKE.set(Some(NEXT_WAKE.get().map_or(wake_at, |at: f64| at.min(wake_at))));
                Poll::Pending
            }
        })
    }

    fn log(&self, message: &str) {
        self.logs.borrow_mut().push(message.to_owned());
    }
}

/// Wraps a store so every operation first lets the other in-flight requests run.
pub struct YieldingStore<S>(pub S);

impl<S> YieldingStore<S> {
    pub fn new(inner: S) -> Self {
        YieldingStore(inner)
    }
}

impl<S: Store> Store for YieldingStore<S> {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        yield_now().await;
        self.0.get(key).await
    }
    async fn put_if(&self, key: &str, body: Vec<u8>, condition: Option<Precondition>) -> Result<Option<String>, StoreError> {
        yield_now().await;
        self.0.put_if(key, body, condition).await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        yield_now().await;
        self.0.delete(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        yield_now().await;
        self.0.list(prefix).await
    }
    fn ops(&self) -> OpCounts {
        self.0.ops()
    }
}

/// Wraps a store so every operation takes `latency_ms` of virtual time, as R2's round trips do:
/// requests then overlap the way they do on Cloudflare (a fold takes a few round trips, and
/// others wake meanwhile).
pub struct LatentStore<'a, S> {
    pub inner: S,
    pub platform: &'a TestPlatform,
    pub latency_ms: f64,
}

impl<S: Store> Store for LatentStore<'_, S> {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        self.platform.sleep(self.latency_ms).await;
        self.inner.get(key).await
    }
    async fn put_if(&self, key: &str, body: Vec<u8>, condition: Option<Precondition>) -> Result<Option<String>, StoreError> {
        self.platform.sleep(self.latency_ms).await;
        self.inner.put_if(key, body, condition).await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.platform.sleep(self.latency_ms).await;
        self.inner.delete(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.platform.sleep(self.latency_ms).await;
        self.inner.list(prefix).await
    }
    fn ops(&self) -> OpCounts {
        self.inner.ops()
    }
}

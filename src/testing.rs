//! Test helpers: a tiny executor and a store that interleaves concurrent requests.
//!
//! The worker is single-threaded and its futures are driven by the JS event loop; in native tests
//! we drive them by hand. `YieldingStore` suspends every operation once, so futures run under
//! `join_all` interleave the way concurrent requests in one isolate do: all read, then all write.

use crate::store::{OpCounts, Precondition, Store, StoreError, Versioned};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// Run a future to completion, polling it until it is ready.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
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
            Poll::Ready(outputs.iter_mut().map(|o| o.take().unwrap()).collect())
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
            Poll::Pending
        }
    })
    .await
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
    fn ops(&self) -> OpCounts {
        self.0.ops()
    }
}

//! `Store` on an R2 bucket: conditional puts give the compare-and-swap the room logic relies on.
//! A put refused by R2 (429 rate limit, 5xx) is an `Err`: the caller treats its outcome as unknown.

use crate::store::{OpCounter, OpCounts, Precondition, Store, StoreError, Versioned};
use worker::{Bucket, Conditional};

pub struct R2Store {
    bucket: Bucket,
    counter: OpCounter,
}

impl R2Store {
    pub fn new(bucket: Bucket) -> Self {
        R2Store { bucket, counter: OpCounter::default() }
    }
}

fn failed(err: worker::Error) -> StoreError {
    StoreError(err.to_string())
}

impl Store for R2Store {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        self.counter.count(|c| c.get += 1);
        let Some(object) = self.bucket.get(key).execute().await.map_err(failed)? else {
            return Ok(None);
        };
        let etag = object.etag();
        let body = match object.body() {
            Some(body) => body.bytes().await.map_err(failed)?,
            None => Vec::new(),
        };
        Ok(Some(Versioned { body, etag }))
    }

    async fn put_if(&self, key: &str, body: Vec<u8>, condition: Option<Precondition>) -> Result<Option<String>, StoreError> {
        self.counter.count(|c| c.put += 1);
        let mut put = self.bucket.put(key, body);
        if let Some(condition) = condition {
            put = put.only_if(match condition {
                Precondition::Absent => Conditional { etag_does_not_match: Some("*".into()), ..Default::default() },
                Precondition::Matches(etag) => Conditional { etag_matches: Some(etag), ..Default::default() },
            });
        }
        // Ok(None): the precondition failed and nothing was written.
        Ok(put.execute().await.map_err(failed)?.map(|object| object.etag()))
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.counter.count(|c| c.delete += 1);
        self.bucket.delete(key).await.map_err(failed)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.counter.count(|c| c.list += 1);
        let listed = self.bucket.list().prefix(prefix).execute().await.map_err(failed)?;
        Ok(listed.objects().iter().map(|object| object.key()).collect())
    }

    fn ops(&self) -> OpCounts {
        self.counter.get()
    }
}

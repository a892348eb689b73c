//! Per-origin monthly quotas, enforced without a storage read on every request.
//!
//! The policy is the reference's: `ALLOWED_ORIGINS` (comma list) pass freely; other browser
//! origins get `ORIGIN_QUOTA` requests a month (default 10,000; 0 when `ALLOWED_ORIGINS` is set
//! without a quota, which means 401). The reference reads the origin's counter from R2 on every
//! request and adds 100 with probability 1/100. Here each isolate keeps a ledger per origin:
//!
//! - the stored count is re-read at most once every `REFRESH_MS` (one Class B read a minute per
//!   active origin per isolate, instead of one per request);
//! - requests are counted exactly in memory and added to the stored count with a
//!   compare-and-swap every `FLUSH_EVERY` requests (one Class A write per 100 requests, as the
//!   reference, but without its sampling noise and without lost updates).
//!
//! Error bound: an isolate that is evicted loses at most `FLUSH_EVERY - 1` uncounted requests per
//! origin, and an isolate sees other isolates' requests at most `REFRESH_MS` late; so an origin can
//! exceed its quota by at most what its other isolates serve in one minute plus 99 per isolate.
//! The counter keys are the reference's (`join-counts/<year-1900>-<month0>/<origin>`), so
//! counts carry over when a deployment swaps the reference's code for ours.

use crate::store::{Precondition, Store, StoreError};
use std::collections::HashMap;

/// Default monthly quota per origin when none is configured.
pub const DEFAULT_QUOTA: u64 = 10_000;
/// How often an isolate re-reads an origin's stored count.
pub const REFRESH_MS: f64 = 60_000.0;
/// Requests counted in memory before they are added to the stored count.
pub const FLUSH_EVERY: u64 = 100;

/// What the configuration says about a request's origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// No `Origin` header, or an allowed origin: no quota applies.
    Open,
    /// A quota of 0 applies: 401.
    Unauthorized,
    /// Count against this monthly quota.
    Metered(u64),
}

/// `ALLOWED_ORIGINS` and `ORIGIN_QUOTA`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaPolicy {
    allowed_origins: Option<Vec<String>>,
    quota: u64,
}

/// Unconfigured: every origin is metered at the default quota.
impl Default for QuotaPolicy {
    fn default() -> Self {
        QuotaPolicy::from_env(None, None)
    }
}

impl QuotaPolicy {
    /// Build from the two environment variables (unset or empty = not configured).
    /// An unparseable `ORIGIN_QUOTA` is treated as unset.
    pub fn from_env(allowed_origins: Option<&str>, origin_quota: Option<&str>) -> Self {
        let allowed_origins = allowed_origins
            .filter(|list| !list.is_empty())
            .map(|list| list.split(',').map(str::to_owned).collect::<Vec<_>>());
        let configured_quota = origin_quota.filter(|q| !q.is_empty()).and_then(|q| q.trim().parse::<u64>().ok());
        let quota = match (configured_quota, &allowed_origins) {
            (Some(quota), _) => quota,
            (None, Some(_)) => 0,
            (None, None) => DEFAULT_QUOTA,
        };
        QuotaPolicy { allowed_origins, quota }
    }

    pub fn gate(&self, origin: Option<&str>) -> Gate {
        let Some(origin) = origin else { return Gate::Open };
        if self.allowed_origins.as_ref().is_some_and(|list| list.iter().any(|allowed| allowed == origin)) {
            return Gate::Open;
        }
        match self.quota {
            0 => Gate::Unauthorized,
            quota => Gate::Metered(quota),
        }
    }
}

/// One origin's count, as this isolate knows it.
#[derive(Debug, Clone, Default, PartialEq)]
struct OriginLedger {
    key: String,
    stored: u64,
    etag: Option<String>,
    refreshed_at: f64,
    pending: u64,
}

/// In-isolate ledgers for all origins seen (lives as long as the isolate).
#[derive(Debug, Default)]
pub struct Ledgers {
    origins: HashMap<String, OriginLedger>,
}

/// Whether a metered request may proceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    OverQuota,
}

impl Ledgers {
    /// Count one request from `origin` against `quota`, reading or writing storage only when the
    /// ledger is stale or a batch is full. Storage errors fail open (the request is admitted and
    /// the count kept for the next flush): a quota must not turn an R2 hiccup into an outage.
    ///
    /// The caller keeps the ledgers in a `RefCell`; no borrow is held across an await.
    pub async fn admit<S: Store>(cell: &std::cell::RefCell<Ledgers>, store: &S, origin: &str, quota: u64, now_ms: f64) -> Admission {
        let key = counter_key(origin, now_ms);
        let stale = {
            let ledgers = cell.borrow();
            ledgers.origins.get(origin).is_none_or(|l| l.key != key || now_ms - l.refreshed_at >= REFRESH_MS)
        };
        if stale {
            if let Ok((stored, etag)) = read_count(store, &key).await {
                let mut ledgers = cell.borrow_mut();
                let ledger = ledgers.origins.entry(origin.to_owned()).or_default();
                if ledger.key != key {
                    ledger.pending = 0; // last month's unflushed requests no longer matter
                }
                *ledger = OriginLedger { key: key.clone(), stored, etag, refreshed_at: now_ms, pending: ledger.pending };
            }
        }

        let to_flush = {
            let mut ledgers = cell.borrow_mut();
            let ledger = ledgers.origins.entry(origin.to_owned()).or_insert_with(|| OriginLedger { key: key.clone(), ..Default::default() });
            if ledger.stored + ledger.pending >= quota {
                return Admission::OverQuota;
            }
            ledger.pending += 1;
            if ledger.pending < FLUSH_EVERY {
                return Admission::Admitted;
            }
            let batch = std::mem::take(&mut ledger.pending);
            (batch, ledger.stored, ledger.etag.clone())
        };

        let (batch, stored, etag) = to_flush;
        let flushed = flush(store, &key, batch, stored, etag).await;
        let mut ledgers = cell.borrow_mut();
        let ledger = ledgers.origins.entry(origin.to_owned()).or_default();
        match flushed {
            Ok((total, etag)) => {
                ledger.stored = total;
                ledger.etag = Some(etag);
                ledger.refreshed_at = now_ms;
            }
            Err(_) => ledger.pending += batch,
        }
        Admission::Admitted
    }
}

async fn read_count<S: Store>(store: &S, key: &str) -> Result<(u64, Option<String>), StoreError> {
    Ok(match store.get(key).await? {
        None => (0, None),
        Some(stored) => (parse_count(&stored.body), Some(stored.etag)),
    })
}

fn parse_count(body: &[u8]) -> u64 {
    std::str::from_utf8(body).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}

/// Add `batch` to the stored count with compare-and-swap, re-reading on a lost race.
async fn flush<S: Store>(store: &S, key: &str, batch: u64, mut stored: u64, mut etag: Option<String>) -> Result<(u64, String), StoreError> {
    for _ in 0..4 {
        let total = stored + batch;
        let condition = match &etag {
            Some(etag) => Precondition::Matches(etag.clone()),
            None => Precondition::Absent,
        };
        if let Some(new_etag) = store.put_if(key, total.to_string().into_bytes(), Some(condition)).await? {
            return Ok((total, new_etag));
        }
        (stored, etag) = read_count(store, key).await?;
    }
    Err(StoreError("quota counter stayed contended".into()))
}

/// The reference's counter key: `join-counts/${d.getYear()}-${d.getMonth()}/${encodeURIComponent(origin)}`.
pub fn counter_key(origin: &str, now_ms: f64) -> String {
    let (year, month0) = utc_year_month(now_ms);
    format!("join-counts/{}-{}/{}", year - 1900, month0, encode_uri_component(origin))
}

/// Gregorian (year, zero-based month) of a Unix time in ms, in UTC.
fn utc_year_month(now_ms: f64) -> (i64, u32) {
    let days = (now_ms / 86_400_000.0).floor() as i64;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month - 1)
}

/// JavaScript's `encodeURIComponent`.
fn encode_uri_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for byte in s.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use crate::testing::{block_on as run, TestPlatform};
    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        run(&TestPlatform::at(NOW), future)
    }
    use std::cell::RefCell;

    // 2026-11-23T12:00:00Z
    const NOW: f64 = 1_795_435_200_000.0;
    const ORIGIN: &str = "https://app.example";

    #[test]
    fn policy_follows_the_reference() {
        let open = QuotaPolicy::from_env(None, None);
        assert_eq!(open.gate(None), Gate::Open);
        assert_eq!(open.gate(Some(ORIGIN)), Gate::Metered(DEFAULT_QUOTA));

        let listed = QuotaPolicy::from_env(Some("https://a.example,https://b.example"), None);
        assert_eq!(listed.gate(Some("https://b.example")), Gate::Open);
        assert_eq!(listed.gate(Some(ORIGIN)), Gate::Unauthorized);
        assert_eq!(listed.gate(None), Gate::Open);

        let listed_with_quota = QuotaPolicy::from_env(Some("https://a.example"), Some("50"));
        assert_eq!(listed_with_quota.gate(Some(ORIGIN)), Gate::Metered(50));
        assert_eq!(QuotaPolicy::from_env(None, Some("0")).gate(Some(ORIGIN)), Gate::Unauthorized);
        assert_eq!(QuotaPolicy::from_env(None, Some("lots")).gate(Some(ORIGIN)), Gate::Metered(DEFAULT_QUOTA));
    }

    #[test]
    fn counter_keys_match_the_reference() {
        assert_eq!(counter_key(ORIGIN, NOW), "join-counts/126-10/https%3A%2F%2Fapp.example");
        assert_eq!(utc_year_month(0.0), (1970, 0));
        assert_eq!(utc_year_month(951_782_400_000.0), (2000, 1)); // 2000-02-29
        assert_eq!(utc_year_month(1_704_067_199_000.0), (2023, 11)); // 2023-12-31T23:59:59Z
        assert_eq!(encode_uri_component("a b/é~"), "a%20b%2F%C3%A9~");
    }

    #[test]
    fn a_minute_of_traffic_costs_one_read_and_a_write_per_hundred() {
        let store = MemoryStore::new();
        let ledgers = RefCell::new(Ledgers::default());
        for i in 0..250 {
            let now = NOW + f64::from(i) * 100.0; // 25 s of traffic
            assert_eq!(block_on(Ledgers::admit(&ledgers, &store, ORIGIN, 10_000, now)), Admission::Admitted);
        }
        assert_eq!(store.ops().get, 1);
        assert_eq!(store.ops().put, 2);
        assert_eq!(store.peek(&counter_key(ORIGIN, NOW)).unwrap(), b"200");
        // a minute after the last flush (which also refreshed it) the ledger is read once more
        block_on(Ledgers::admit(&ledgers, &store, ORIGIN, 10_000, NOW + 59_000.0));
        assert_eq!(store.ops().get, 1);
        block_on(Ledgers::admit(&ledgers, &store, ORIGIN, 10_000, NOW + 81_000.0));
        assert_eq!(store.ops().get, 2);
    }

    #[test]
    fn requests_over_quota_are_refused_counting_other_isolates() {
        let store = MemoryStore::new();
        store.force_put(&counter_key(ORIGIN, NOW), b"95");
        let ledgers = RefCell::new(Ledgers::default());
        let admitted = (0..10)
            .filter(|_| block_on(Ledgers::admit(&ledgers, &store, ORIGIN, 100, NOW)) == Admission::Admitted)
            .count();
        assert_eq!(admitted, 5);
    }

    #[test]
    fn concurrent_isolates_do_not_lose_each_others_counts() {
        let store = MemoryStore::new();
        let (one, two) = (RefCell::new(Ledgers::default()), RefCell::new(Ledgers::default()));
        for _ in 0..100 {
            block_on(Ledgers::admit(&one, &store, ORIGIN, 10_000, NOW));
            block_on(Ledgers::admit(&two, &store, ORIGIN, 10_000, NOW));
        }
        // both flushed a batch of 100 from the same stale read; the CAS made the second re-read
        assert_eq!(store.peek(&counter_key(ORIGIN, NOW)).unwrap(), b"200");
    }

    #[test]
    fn storage_errors_fail_open_and_keep_the_count() {
        let store = MemoryStore::new();
        let ledgers = RefCell::new(Ledgers::default());
        store.fail_next(1);
        assert_eq!(block_on(Ledgers::admit(&ledgers, &store, ORIGIN, 10_000, NOW)), Admission::Admitted);
        for _ in 0..99 {
            block_on(Ledgers::admit(&ledgers, &store, ORIGIN, 10_000, NOW + 61_000.0));
        }
        assert_eq!(store.peek(&counter_key(ORIGIN, NOW)).unwrap(), b"100");
    }
}

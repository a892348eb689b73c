//! Per-origin monthly quotas, as the reference enforces them, without a storage read per request.
//!
//! Why it exists: a shared signalling worker is paid for per request, so `ORIGIN_QUOTA` caps what
//! each web site (browser `Origin`) may spend a month. The policy is the reference's
//! (`getResponseIfDisallowed` in p2pcf's `worker.js`): requests without `Origin`, and origins in
//! `ALLOWED_ORIGINS`, pass; other origins get `ORIGIN_QUOTA` requests a month, counted in R2
//! under the reference's key (`counter_key`), then 429. The reference reads the counter on every
//! request and adds 100 to it with probability 1/100, with blind writes that let concurrent
//! isolates overwrite each other's counts.
//!
//! # Reservations
//!
//! An isolate admits a request only out of admissions it has already added to the stored count:
//!
//! - it reserves a block by adding it to the count with compare-and-swap (a lost race re-reads
//!   and retries, so no isolate's reservation is lost), then admits locally until the block is
//!   used up. So the stored count is not behind what was admitted (but for credit, below), and
//!   an isolate that is evicted takes no uncounted requests with it but its unwritten credit,
//!   and leaves its unused reservation counted;
//! - once a reservation lands, the isolate leaves the origin's counter alone for
//!   `COUNTER_WRITE_GAP_MS` (1.1 s: R2 takes about one write a second per key, and a faster one
//!   gets 429). Requests meanwhile use what is left of the block, then ride on credit (below);
//! - a block is the larger of two sizes, and never more than what the isolate has already served
//!   for the origin plus one (the request that reserves it):
//!   - doubling: the first block of an origin in an isolate is 1 and each next one doubles, up to
//!     `FLUSH_EVERY` (1, 2, 4, … 64, 100, 100, …), so a short-lived isolate wastes little;
//!   - the pace: what the isolate admitted for the origin since its previous reservation
//!     started, scaled to one write gap, so that at a steady rate a block lasts until the next
//!     write is allowed and credit does not pile up (at 100 requests a second: 1, then 110s);
//! - a block never goes past the quota (`min(block, quota − count)`); with nothing left the
//!   answer is 429, remembered for `REFRESH_MS`, so an origin over quota costs one read a minute
//!   per isolate;
//! - the count is written as `"<count> <nonce>"`. The reference reads it with `parseInt`, which
//!   stops at the space, so both workers can read the key; we read it the same way. When a write
//!   reports an error, the counter is read back: if it holds our write, it landed (R2 can report
//!   an error for a write it made) and it is not made again.
//!
//! # Credit
//!
//! Some requests are admitted on credit, without a reservation; this isolate adds their number
//! (`debt`) to its next reservation:
//!
//! - requests that arrive while this isolate's reservation for the origin is in flight. They do
//!   not wait for it (in Workers, a request woken by another request's I/O can be cancelled with
//!   that request); the reservation pays them out of its block when it lands;
//! - requests that arrive in the write gap after a reservation landed, once its block is used up:
//!   traffic outran the pace (an origin's first 1.1 s in an isolate: a block of 1, then credit;
//!   or a rising rate). The next reservation writes them and sizes its block to them;
//! - requests in the 1–2 s after a failed storage attempt (an error, or `CAS_TRIES` races lost in
//!   a row), during which this isolate leaves the origin's counter alone: a quota must not turn
//!   an R2 hiccup into an outage, and the key is hot, so retrying on every request would only
//!   add 429s.
//!
//! Credit stops where the count this isolate last saw plus what it owes reaches the quota: past
//! that the origin is over quota as soon as the credit is written, so the request is refused.
//!
//! # Error bound (per origin and month, when only this worker writes the counter)
//!
//! - **Admitted ≤ quota + C**, where C is the requests admitted on credit and paid for neither
//!   out of a block nor by a write that kept the count within the quota
//!   (`OriginLedger::unpaid`, summed over the isolates). Each reservation lands on the latest
//!   count, so the blocks granted and the credit written below the quota add up to at most the
//!   quota. What makes up C:
//!   - credit given at the quota's edge: to requests that reached an isolate during one of its
//!     reservations' round trips, in the 1.1 s write gap after one landed (beyond its block), or
//!     in the 1–2 s after one of its failed storage attempts, and only up to the quota as that
//!     isolate last saw it. That is at most ~1.1 s of an isolate's traffic (plus a round trip)
//!     per reservation at the quota's edge, 1–2 s of it per failed attempt;
//!   - credit never written, because its isolate, its ledger (`MAX_ORIGINS`) or the month ended
//!     first: what the isolate admitted on credit since its last reservation landed, ~1.1 s of
//!     its traffic beyond the block (more only while storage fails or a reservation hangs).
//!
//!   With one isolate serving one request at a time and no storage failures, admitted ≤ quota:
//!   its credit fits under the count it last saw, which no one else moves.
//! - **Nothing is lost with an isolate: stored count ≥ admitted − credit not yet written.**
//!   Credit is written by the isolate's next successful reservation; only credit still unwritten
//!   when an isolate, its ledger or the month ends is never counted.
//! - **An origin is refused early only by overcounts:** unused reservations (including those of
//!   evicted isolates) and writes that reported an error and could not be confirmed by reading
//!   back (these are made again, so each overcounts by at most its own amount). A block is never
//!   more than what its isolate already served plus the request that reserves it, and a new
//!   block is reserved only when the last is used up, so an isolate's unused reservation is never
//!   more than what it already served. Hence at least (quota − unconfirmed overcounts) / 2
//!   requests are served before the origin is refused; with steady traffic the loss per isolate
//!   is under the larger of 100 and ~1.1 s of its traffic. (A reservation unanswered for
//!   `STUCK_MS` is abandoned, and its block, if it lands later, is wasted too.)
//!
//! The reference's blind `put` on the same key can overwrite a reservation, so a deployment
//! running both workers on one bucket gets the reference's accuracy, not these bounds.
//!
//! # Cost
//!
//! Per origin and isolate: one read, then one write per reservation, and after a reservation
//! lands no write for `COUNTER_WRITE_GAP_MS` (1.1 s; after a failed attempt, the 1–2 s backoff).
//! A block is used up before the next is reserved, so away from the quota's edge that is at most
//! 7 writes for the first 127 requests, then at most one per 100 requests, and at most one per
//! 1.1 s however fast requests come (a burst of 100 in 0.5 s: one write; the next, after the gap,
//! pays its credit). Add a read and a write per race lost to another isolate (retried at once:
//! the lost write did not land) and a read after a write that reported an error; one read a
//! minute while the origin is over quota. Isolates do not pace each other: n isolates busy with
//! one origin write its key up to n times per 1.1 s, and a write that meets R2's limit costs
//! credit and a 1–2 s backoff, not counts.

use crate::store::{Precondition, Store, StoreError};
use std::cell::RefCell;
use std::collections::HashMap;

/// Default monthly quota per origin when none is configured (the reference's).
pub const DEFAULT_QUOTA: u64 = 10_000;
/// How long an isolate answers 429 from memory for an origin found over quota.
pub const REFRESH_MS: f64 = 60_000.0;
/// The largest block of admissions the doubling reaches (one write per 100 requests, as the
/// reference's sampling on average). A block can be larger when the pace asks for it: at most
/// about one write gap of the isolate's traffic, and never more than it already served.
pub const FLUSH_EVERY: u64 = 100;
/// After a reservation lands, no write of the origin's counter by this isolate for this long:
/// R2 takes about one write a second per key (plus 10%); requests meanwhile use what is left of
/// the block, then ride on credit.
pub const COUNTER_WRITE_GAP_MS: f64 = 1_100.0;
/// Base wait after a storage failure before the origin's counter is tried again (R2's per-key
/// write interval); the actual wait is 1–2 times this, jittered so isolates do not retry in step.
pub const BACKOFF_MS: f64 = 1_000.0;
/// Origins with a ledger in one isolate: the `Origin` header is the client's to choose, so
/// without a cap the map would grow with every made-up origin.
pub const MAX_ORIGINS: usize = 1_000;
/// A reservation unanswered for this long is presumed abandoned (its request was cancelled and
/// will never settle it), so the origin is not left on credit for the life of the isolate.
pub const STUCK_MS: f64 = 10_000.0;
/// Compare-and-swap attempts per reservation before it counts as a failure (the key is hot: more
/// attempts would mostly meet R2's per-key write limit).
const CAS_TRIES: usize = 3;

/// What the configuration says about a request's origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// No `Origin` header, or an allowed origin: no quota applies.
    Open,
    /// A quota of 0 applies: 401.
    Unauthorized,
    /// Count against this monthly quota. `Metered(0)` refuses every request (a negative
    /// `ORIGIN_QUOTA`); `Metered(u64::MAX)` counts without a limit (an unparseable one).
    Metered(u64),
}

/// `ALLOWED_ORIGINS` and `ORIGIN_QUOTA`, parsed as the reference does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaPolicy {
    allowed_origins: Option<Vec<String>>,
    /// The gate for a browser origin not in `allowed_origins`.
    others: Gate,
}

/// Unconfigured: every origin is metered at the default quota.
impl Default for QuotaPolicy {
    fn default() -> Self {
        QuotaPolicy::from_env(None, None)
    }
}

impl QuotaPolicy {
    /// Build from the two environment variables, with the reference's JavaScript semantics:
    /// unset or empty is falsy; `ORIGIN_QUOTA` is `parseInt(ORIGIN_QUOTA)` if truthy, else 10,000,
    /// or 0 when `ALLOWED_ORIGINS` is set. `parseInt` reads a leading integer (`"10000abc"` is
    /// 10,000); without one it is `NaN`, which is never 0 and never exceeded (no limit); a
    /// negative quota is always exceeded.
    pub fn from_env(allowed_origins: Option<&str>, origin_quota: Option<&str>) -> Self {
        let allowed_origins = allowed_origins
            .filter(|list| !list.is_empty())
            .map(|list| list.split(',').map(str::to_owned).collect::<Vec<_>>());
        let others = match origin_quota.filter(|quota| !quota.is_empty()) {
            None if allowed_origins.is_some() => Gate::Unauthorized,
            None => Gate::Metered(DEFAULT_QUOTA),
            Some(text) => match parse_int(text) {
                JsInt::NonNegative(0) => Gate::Unauthorized,
                JsInt::NonNegative(quota) => Gate::Metered(quota),
                JsInt::NaN => Gate::Metered(u64::MAX),
                JsInt::Negative => Gate::Metered(0),
            },
        };
        QuotaPolicy { allowed_origins, others }
    }

    /// The gate for a request with this `Origin` header.
    pub fn gate(&self, origin: Option<&str>) -> Gate {
        let Some(origin) = origin else { return Gate::Open };
        if self.allowed_origins.as_ref().is_some_and(|list| list.iter().any(|allowed| allowed == origin)) {
            return Gate::Open;
        }
        self.others.clone()
    }
}

/// Whether a metered request may proceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    OverQuota,
}

/// In-isolate ledgers for the origins seen lately (lives as long as the isolate).
#[derive(Debug, Default)]
pub struct Ledgers {
    origins: HashMap<String, OriginLedger>,
    /// Counts calls, to stamp ledgers for recency and to number reservations (nonces).
    ticks: u64,
}

/// One origin's reservation in this isolate, for one month's counter.
#[derive(Debug)]
struct OriginLedger {
    /// The UTC (year, month) whose counter this ledger reserves from; a new month starts afresh.
    month: (i64, u32),
    /// Recency stamp (`Ledgers::ticks`), to evict the least recently used ledger.
    used_at: u64,
    /// The counter as this isolate last wrote it, to write again without reading (`None`: read).
    snapshot: Option<Snapshot>,
    /// The highest count this isolate has read or written this month: credit stops there.
    seen: u64,
    /// Admissions reserved in storage and not used yet.
    left: u64,
    /// The next reservation's size by doubling: from 1 up to `FLUSH_EVERY` (the pace may ask
    /// for more).
    block: u64,
    /// Requests this ledger admitted: a block is never more than this plus one, so an unused
    /// reservation is never more than what this isolate already served.
    served: u64,
    /// Requests admitted since the last reservation started, and when it started (`None`: none
    /// yet): the pace, to size a block for a write gap's traffic.
    recent: u64,
    recent_since: Option<f64>,
    /// Requests admitted on credit, to add to the next reservation.
    debt: u64,
    /// Requests admitted on credit this month and paid for neither out of a block nor by a write
    /// that kept the count within the quota: this ledger's share of how far the origin may go
    /// past its quota (`C` in the bound).
    unpaid: u64,
    /// No storage attempt for this origin before this time (ms): the write gap after a
    /// reservation landed, or the backoff after a failure.
    retry_at: f64,
    /// Answer 429 from memory until this time (ms).
    over_until: f64,
    /// The reservation under way, if any.
    in_flight: Option<InFlight>,
}

/// A reservation under way, as its ledger remembers it.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    /// Its number, so a late answer for a replaced ledger or an abandoned attempt is ignored.
    round: u64,
    /// When it started, to presume it abandoned after `STUCK_MS`.
    since: f64,
    /// The credit it is writing, owed again if it is abandoned.
    debt: u64,
}

/// A counter value and the version it was read or written at.
#[derive(Debug, Clone, PartialEq)]
struct Snapshot {
    count: u64,
    /// `None`: the counter does not exist yet.
    etag: Option<String>,
}

/// What one request needs after looking at its ledger.
enum Step {
    Done(Admission),
    Reserve(Plan),
}

/// A reservation to make: everything it needs, taken out of the ledger so no borrow is held
/// across storage calls.
#[derive(Debug)]
struct Plan {
    round: u64,
    key: String,
    snapshot: Option<Snapshot>,
    debt: u64,
    block: u64,
    quota: u64,
    nonce: String,
}

/// How a reservation went.
#[derive(Debug)]
enum Outcome {
    /// The count now includes the plan's debt and `granted` more (0: the origin is at its quota).
    Made { granted: u64, snapshot: Snapshot },
    /// Storage failed or stayed contended; nothing is known to be written. `seen`: the count, if
    /// a read showed it.
    Failed { seen: Option<u64> },
}

impl Ledgers {
    /// Admit one request from `origin` against `quota` out of this isolate's reservation, making a
    /// new one when it is used up (see the module documentation for the bounds).
    ///
    /// The caller keeps the ledgers in a `RefCell`; no borrow is held across an await.
    pub async fn admit<S: Store>(cell: &RefCell<Ledgers>, store: &S, origin: &str, quota: u64, now_ms: f64) -> Admission {
        if quota == 0 {
            return Admission::OverQuota; // a negative ORIGIN_QUOTA: every count is over it
        }
        let step = cell.borrow_mut().decide(origin, quota, now_ms);
        let plan = match step {
            Step::Done(admission) => return admission,
            Step::Reserve(plan) => plan,
        };
        let outcome = reserve(store, &plan).await;
        cell.borrow_mut().settle(origin, &plan, outcome, now_ms)
    }

    /// Answer from memory if possible; otherwise start a reservation.
    fn decide(&mut self, origin: &str, quota: u64, now_ms: f64) -> Step {
        self.ticks += 1;
        let round = self.ticks;
        let ledger = self.ledger(origin, now_ms, round);
        if now_ms < ledger.over_until {
            return Step::Done(Admission::OverQuota);
        }
        if ledger.left > 0 {
            ledger.left -= 1;
            return Step::Done(ledger.admitted());
        }
        if ledger.waiting(now_ms) {
            return Step::Done(ledger.on_credit(quota));
        }
        Step::Reserve(ledger.start(round, origin, quota, now_ms))
    }

    /// Record a reservation's outcome in its ledger, and answer the request that made it. A late
    /// outcome (the ledger was replaced or the attempt abandoned meanwhile) only answers.
    fn settle(&mut self, origin: &str, plan: &Plan, outcome: Outcome, now_ms: f64) -> Admission {
        let current = self.origins.get_mut(origin).filter(|ledger| ledger.in_flight.is_some_and(|f| f.round == plan.round));
        let Some(ledger) = current else { return outcome.late_answer(plan) };
        ledger.in_flight = None;
        match outcome {
            Outcome::Made { granted, snapshot } => ledger.granted(plan, granted, snapshot, now_ms),
            Outcome::Failed { seen } => ledger.failed(plan, seen, now_ms, retry_at(origin, now_ms)),
        }
    }

    /// The origin's ledger for the month of `now_ms`, made if needed (evicting the least recently
    /// used one when `MAX_ORIGINS` are kept), stamped as used at `tick`.
    fn ledger(&mut self, origin: &str, now_ms: f64, tick: u64) -> &mut OriginLedger {
        let month = utc_year_month(now_ms);
        if !self.origins.contains_key(origin) && self.origins.len() >= MAX_ORIGINS {
            self.evict_least_recent();
        }
        let ledger = self.origins.entry(origin.to_owned()).or_insert_with(|| OriginLedger::new(month));
        if ledger.month != month {
            *ledger = OriginLedger::new(month);
        }
        ledger.used_at = tick;
        ledger
    }

    /// Forget the least recently used ledger: like an evicted isolate, it leaves its unused
    /// reservation counted and its unwritten credit uncounted.
    fn evict_least_recent(&mut self) {
        let oldest = self.origins.iter().min_by_key(|(_, ledger)| ledger.used_at).map(|(origin, _)| origin.clone());
        if let Some(origin) = oldest {
            self.origins.remove(&origin);
        }
    }
}

impl OriginLedger {
    fn new(month: (i64, u32)) -> Self {
        OriginLedger {
            month,
            used_at: 0,
            snapshot: None,
            seen: 0,
            left: 0,
            block: 1,
            served: 0,
            recent: 0,
            recent_since: None,
            debt: 0,
            unpaid: 0,
            retry_at: 0.0,
            over_until: 0.0,
            in_flight: None,
        }
    }

    /// Count a request as admitted (for the pace and the cap on blocks).
    fn admitted(&mut self) -> Admission {
        self.served += 1;
        self.recent += 1;
        Admission::Admitted
    }

    /// Whether requests must ride on credit: a reservation is under way, one landed less than
    /// `COUNTER_WRITE_GAP_MS` ago, or storage failed lately.
    fn waiting(&self, now_ms: f64) -> bool {
        now_ms < self.retry_at || self.in_flight.is_some_and(|f| now_ms - f.since < STUCK_MS)
    }

    /// Admit on credit while the count this isolate last saw, plus what it owes, leaves room;
    /// past that the origin's count is at its quota as soon as the credit is written: refuse.
    fn on_credit(&mut self, quota: u64) -> Admission {
        let in_flight = self.in_flight.map_or(0, |f| f.debt);
        if self.seen.saturating_add(self.debt).saturating_add(in_flight) >= quota {
            return Admission::OverQuota;
        }
        self.debt += 1;
        self.unpaid += 1;
        self.admitted()
    }

    /// Take what a reservation needs, taking over the credit of an abandoned one.
    fn start(&mut self, round: u64, origin: &str, quota: u64, now_ms: f64) -> Plan {
        if let Some(abandoned) = self.in_flight.take() {
            self.debt += abandoned.debt; // may have landed: counting it twice is the safe error
        }
        let debt = std::mem::take(&mut self.debt);
        let block = self.next_block(now_ms);
        self.recent = 0;
        self.recent_since = Some(now_ms);
        self.in_flight = Some(InFlight { round, since: now_ms, debt });
        Plan { round, key: counter_key(origin, now_ms), snapshot: self.snapshot.take(), debt, block, quota, nonce: nonce(now_ms, round) }
    }

    /// The block to reserve now: the doubling size or the pace (what was admitted since the last
    /// reservation started, scaled to one write gap), whichever is larger, but never more than
    /// what this ledger already served plus the request reserving it.
    fn next_block(&self, now_ms: f64) -> u64 {
        let pace = self.recent_since.map_or(0, |since| {
            // at least a gap: the pace is never more than `recent` (starts are a gap apart anyway)
            let window = (now_ms - since).max(COUNTER_WRITE_GAP_MS);
            (self.recent as f64 * (COUNTER_WRITE_GAP_MS / window)).ceil() as u64
        });
        self.block.max(pace).min(self.served.saturating_add(1))
    }

    /// A reservation landed: leave the counter alone for a write gap; count its credit that fit
    /// under the quota as paid; keep the rest of the block (after this request and any credit
    /// given meanwhile), double the next one; or, with nothing granted, refuse from memory for a
    /// while.
    fn granted(&mut self, plan: &Plan, granted: u64, snapshot: Snapshot, now_ms: f64) -> Admission {
        self.seen = self.seen.max(snapshot.count);
        self.retry_at = now_ms + COUNTER_WRITE_GAP_MS;
        let before = snapshot.count.saturating_sub(plan.debt).saturating_sub(granted);
        self.unpaid = self.unpaid.saturating_sub(plan.debt.min(plan.quota.saturating_sub(before)));
        if granted == 0 {
            self.over_until = now_ms + REFRESH_MS;
            self.snapshot = None; // read afresh next time: the count may have been reset
            return Admission::OverQuota;
        }
        self.snapshot = Some(snapshot);
        self.left += granted - 1;
        self.block = self.block.saturating_mul(2).min(FLUSH_EVERY);
        let paid = self.left.min(self.debt);
        self.left -= paid;
        self.debt -= paid;
        self.unpaid = self.unpaid.saturating_sub(paid);
        self.admitted()
    }

    /// A reservation failed: owe its credit again, leave storage alone until `retry_at`, and
    /// fail open: admit this request on credit too, unless that would pass the quota.
    fn failed(&mut self, plan: &Plan, seen: Option<u64>, now_ms: f64, retry_at: f64) -> Admission {
        self.debt += plan.debt;
        self.seen = self.seen.max(seen.unwrap_or(0));
        self.retry_at = retry_at;
        let admission = self.on_credit(plan.quota);
        if admission == Admission::OverQuota {
            self.over_until = now_ms + REFRESH_MS;
        }
        admission
    }
}

impl Outcome {
    /// The answer for a request whose ledger moved on while it reserved: admitted if granted or,
    /// failing open, unless a read showed the origin at its quota.
    fn late_answer(&self, plan: &Plan) -> Admission {
        let over = match self {
            Outcome::Made { granted, .. } => *granted == 0,
            Outcome::Failed { seen } => seen.is_some_and(|count| count.saturating_add(plan.debt) >= plan.quota),
        };
        if over {
            Admission::OverQuota
        } else {
            Admission::Admitted
        }
    }
}

impl Plan {
    /// Admissions to reserve on top of `count`: the block, but never past the quota.
    fn grant_on(&self, count: u64) -> u64 {
        self.block.min(self.quota.saturating_sub(count.saturating_add(self.debt)))
    }
}

impl Snapshot {
    /// The condition under which a write based on this snapshot may land.
    fn precondition(&self) -> Precondition {
        match &self.etag {
            Some(etag) => Precondition::Matches(etag.clone()),
            None => Precondition::Absent,
        }
    }
}

/// Add the plan's debt and a block to the stored count with compare-and-swap, re-reading after a
/// lost race, and reading back after a write that reported an error.
async fn reserve<S: Store>(store: &S, plan: &Plan) -> Outcome {
    let mut snapshot = plan.snapshot.clone();
    let mut seen = None;
    for _ in 0..CAS_TRIES {
        let current = match snapshot.take() {
            Some(known) => known,
            None => match read_count(store, &plan.key).await {
                Ok(read) => read,
                Err(_) => return Outcome::Failed { seen },
            },
        };
        seen = Some(current.count);
        let granted = plan.grant_on(current.count);
        if granted == 0 && plan.debt == 0 {
            return Outcome::Made { granted, snapshot: current };
        }
        let total = current.count.saturating_add(plan.debt).saturating_add(granted);
        let body = format!("{total} {}", plan.nonce).into_bytes();
        match store.put_if(&plan.key, body.clone(), Some(current.precondition())).await {
            Ok(Some(etag)) => return Outcome::Made { granted, snapshot: Snapshot { count: total, etag: Some(etag) } },
            Ok(None) => {} // another isolate wrote first: re-read, retry
            Err(_) => return confirm(store, &plan.key, &body, total, granted, current.count).await,
        }
    }
    Outcome::Failed { seen }
}

/// After a write reported an error: it landed if the counter now holds it (its nonce is ours).
/// If it cannot be told, it counts as failed and its credit is written again (an overcount).
async fn confirm<S: Store>(store: &S, key: &str, body: &[u8], total: u64, granted: u64, seen: u64) -> Outcome {
    match store.get(key).await {
        Ok(Some(stored)) if stored.body == body => Outcome::Made { granted, snapshot: Snapshot { count: total, etag: Some(stored.etag) } },
        Ok(Some(stored)) => Outcome::Failed { seen: Some(parse_count(&stored.body).max(seen)) },
        _ => Outcome::Failed { seen: Some(seen) },
    }
}

/// The stored count and its version (0 and absent when the counter does not exist).
async fn read_count<S: Store>(store: &S, key: &str) -> Result<Snapshot, StoreError> {
    Ok(match store.get(key).await? {
        None => Snapshot { count: 0, etag: None },
        Some(stored) => Snapshot { count: parse_count(&stored.body), etag: Some(stored.etag) },
    })
}

/// A stored count as the reference reads it (`parseInt`), so its plain `"1234"` and our
/// `"1234 <nonce>"` both read as 1234; anything else (`NaN`, negative) reads as 0.
fn parse_count(body: &[u8]) -> u64 {
    match parse_int(&String::from_utf8_lossy(body)) {
        JsInt::NonNegative(count) => count,
        JsInt::NaN | JsInt::Negative => 0,
    }
}

/// Unique per write within an isolate: the time and a number that grows with each call to the
/// isolate's ledgers. Two isolates could only collide by writing in the same millisecond with the
/// same call number, the same count and on the same version, one of them seeing an error; the
/// cost would be one block counted once for two isolates.
fn nonce(now_ms: f64, round: u64) -> String {
    format!("{:x}.{round:x}", now_ms.max(0.0) as u64)
}

/// When to try storage again after a failure: `BACKOFF_MS` times 1–2, jittered by a hash of the
/// origin and the time (there is no random source here; isolates fail at different times).
fn retry_at(origin: &str, now_ms: f64) -> f64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325; // FNV-1a
    for byte in origin.bytes().chain(now_ms.to_bits().to_le_bytes()) {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    let unit = (hash >> 11) as f64 / (1u64 << 53) as f64;
    now_ms + BACKOFF_MS * (1.0 + unit)
}

/// JavaScript's `parseInt(text)` (no radix), as far as a quota or a count needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JsInt {
    /// No leading integer.
    NaN,
    /// Below zero (`-0` is zero, as `-0 === 0`).
    Negative,
    /// Zero or more, saturated at `u64::MAX` (huge values compare like the float they are in JS).
    NonNegative(u64),
}

/// Skip leading white space, take a sign, then decimal digits (or hex after `0x`), ignoring the
/// rest: `"10000abc"` → 10000, `" 7"` → 7, `"abc"` → NaN, `"-5"` → negative.
fn parse_int(text: &str) -> JsInt {
    let text = text.trim_start_matches(|c: char| (c.is_whitespace() && c != '\u{85}') || c == '\u{FEFF}');
    let (negative, text) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (radix, text) = match text.get(..2) {
        Some("0x" | "0X") => (16, &text[2..]),
        _ => (10, text),
    };
    let end = text.find(|c: char| !c.is_digit(radix)).unwrap_or(text.len());
    let digits = &text[..end];
    if digits.is_empty() {
        return JsInt::NaN;
    }
    let value = digits.chars().filter_map(|c| c.to_digit(radix)).fold(0u64, |acc, d| acc.saturating_mul(u64::from(radix)).saturating_add(u64::from(d)));
    if negative && value > 0 {
        JsInt::Negative
    } else {
        JsInt::NonNegative(value)
    }
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
    crate::protocol::percent_encode(s, b"-_.!~*'()")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use crate::testing::{block_on as run, join_all, TestPlatform, YieldingStore};
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Waker};

    fn block_on<F: Future>(future: F) -> F::Output {
        run(&TestPlatform::at(NOW), future)
    }

    // 2026-11-23T12:00:00Z
    const NOW: f64 = 1_795_435_200_000.0;
    const ORIGIN: &str = "https://app.example";

    fn admit<S: Store>(ledgers: &RefCell<Ledgers>, store: &S, quota: u64, now: f64) -> Admission {
        block_on(Ledgers::admit(ledgers, store, ORIGIN, quota, now))
    }

    /// The origin's stored count this month, as the reference would read it.
    fn stored(store: &MemoryStore) -> u64 {
        store.peek(&counter_key(ORIGIN, NOW)).map_or(0, |body| parse_count(&body))
    }

    /// (unused reservation, unwritten credit, next block by doubling) of the origin's ledger.
    fn ledger(ledgers: &RefCell<Ledgers>) -> (u64, u64, u64) {
        ledgers.borrow().origins.get(ORIGIN).map_or((0, 0, 0), |l| (l.left, l.debt, l.block))
    }

    /// The origin's ledger's share of C: credit paid neither out of a block nor within the quota.
    fn unpaid(ledgers: &RefCell<Ledgers>) -> u64 {
        ledgers.borrow().origins.get(ORIGIN).map_or(0, |l| l.unpaid)
    }

    /// A small deterministic generator for simulations.
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 32) % n
        }
    }

    #[test]
    fn policy_follows_the_reference() {
        let open = QuotaPolicy::from_env(None, None);
        assert_eq!(open.gate(None), Gate::Open);
        assert_eq!(open.gate(Some(ORIGIN)), Gate::Metered(DEFAULT_QUOTA));

        let listed = QuotaPolicy::from_env(Some("https://a.example,https://b.example"), None);
        assert_eq!(listed.gate(Some("https://b.example")), Gate::Open);
        assert_eq!(listed.gate(Some(ORIGIN)), Gate::Unauthorized);
        assert_eq!(listed.gate(None), Gate::Open);
        assert_eq!(QuotaPolicy::from_env(Some("https://a.example"), Some("")).gate(Some(ORIGIN)), Gate::Unauthorized);
        assert_eq!(QuotaPolicy::from_env(Some(""), Some("")).gate(Some(ORIGIN)), Gate::Metered(DEFAULT_QUOTA));

        let listed_with_quota = QuotaPolicy::from_env(Some("https://a.example"), Some("50"));
        assert_eq!(listed_with_quota.gate(Some(ORIGIN)), Gate::Metered(50));
        assert_eq!(QuotaPolicy::from_env(None, Some("0")).gate(Some(ORIGIN)), Gate::Unauthorized);
    }

    #[test]
    fn origin_quota_is_read_with_parse_int() {
        let gate = |quota: &str| QuotaPolicy::from_env(None, Some(quota)).gate(Some(ORIGIN));
        assert_eq!(gate("10000abc"), Gate::Metered(10_000));
        assert_eq!(gate("50abc"), Gate::Metered(50));
        assert_eq!(gate(" \n 7 "), Gate::Metered(7));
        assert_eq!(gate("12.9"), Gate::Metered(12));
        assert_eq!(gate("0x10"), Gate::Metered(16));
        assert_eq!(gate("-0"), Gate::Unauthorized, "-0 === 0");
        // NaN: never === 0 and never reached, so metered without a limit
        assert_eq!(gate("lots"), Gate::Metered(u64::MAX));
        assert_eq!(QuotaPolicy::from_env(Some("https://a.example"), Some("lots")).gate(Some(ORIGIN)), Gate::Metered(u64::MAX));
        // negative: every count is over it
        assert_eq!(gate("-5"), Gate::Metered(0));
        let store = MemoryStore::new();
        assert_eq!(admit(&RefCell::default(), &store, 0, NOW), Admission::OverQuota);
        assert_eq!(store.ops().get + store.ops().put, 0);
    }

    #[test]
    fn a_numeric_quota_with_allowed_origins_meters_instead_of_401() {
        // wrangler.toml's `ORIGIN_QUOTA = 10000` reaches us as the text "10000"
        let policy = QuotaPolicy::from_env(Some("https://a.example"), Some("10000"));
        assert_eq!(policy.gate(Some(ORIGIN)), Gate::Metered(10_000));
        assert_eq!(policy.gate(Some("https://a.example")), Gate::Open);
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
    fn stored_counts_are_read_with_parse_int_both_ways() {
        assert_eq!(parse_count(b"250"), 250, "the reference's plain count");
        assert_eq!(parse_count(b"123 18f2a.7"), 123, "ours, with a nonce");
        assert_eq!(parse_count(b"  42\n"), 42);
        assert_eq!(parse_count("\u{FEFF}7".as_bytes()), 7);
        assert_eq!(parse_count(b"+7"), 7);
        assert_eq!(parse_count(b"0x1f"), 31);
        assert_eq!(parse_count(b"1e3"), 1);
        assert_eq!(parse_count(b"99999999999999999999999"), u64::MAX);
        for unreadable in [&b""[..], b"x", b"NaN", b"-5", b"\xff12", b"0x"] {
            assert_eq!(parse_count(unreadable), 0, "{unreadable:?}");
        }

        // what we write starts with the count and a space: the reference's parseInt reads it
        let store = MemoryStore::new();
        admit(&RefCell::default(), &store, 10_000, NOW);
        let body = String::from_utf8(store.peek(&counter_key(ORIGIN, NOW)).unwrap()).unwrap();
        let (count, nonce) = body.split_once(' ').unwrap();
        assert_eq!((count, nonce.is_empty()), ("1", false));
    }

    #[test]
    fn reservations_double_from_one_to_a_hundred() {
        let store = MemoryStore::new();
        let ledgers = RefCell::new(Ledgers::default());
        // a request every 1.2 s: past each write gap, so a used-up block is followed by the next
        // (and the pace, about one request a gap, never asks for more than the doubling)
        let at = |i: u32| NOW + f64::from(i) * 1_200.0;
        for i in 0..127 {
            assert_eq!(admit(&ledgers, &store, 10_000, at(i)), Admission::Admitted);
        }
        // blocks 1 + 2 + 4 + 8 + 16 + 32 + 64 = 127: one read, seven writes, nothing unused
        assert_eq!((store.ops().get, store.ops().put), (1, 7));
        assert_eq!((stored(&store), ledger(&ledgers)), (127, (0, 0, 100)));
        admit(&ledgers, &store, 10_000, at(127));
        assert_eq!((store.ops().get, store.ops().put, stored(&store)), (1, 8, 227));
        for _ in 0..99 {
            admit(&ledgers, &store, 10_000, at(128));
        }
        assert_eq!((store.ops().put, ledger(&ledgers).0), (8, 0));
    }

    #[test]
    fn the_reference_count_is_honoured_and_the_quota_never_passed() {
        // requests a write gap apart: blocks of 1, 2 and (cut to the quota) 2
        let store = MemoryStore::new();
        store.force_put(&counter_key(ORIGIN, NOW), b"95");
        let ledgers = RefCell::new(Ledgers::default());
        let admitted = (0..10).filter(|i| admit(&ledgers, &store, 100, NOW + f64::from(*i) * 1_200.0) == Admission::Admitted).count();
        assert_eq!(admitted, 5);
        assert_eq!(stored(&store), 100);

        // a burst: a block of 1, then credit up to the quota as last seen (96 + 4)
        let store = MemoryStore::new();
        store.force_put(&counter_key(ORIGIN, NOW), b"95");
        let ledgers = RefCell::new(Ledgers::default());
        let admitted = (0..10).filter(|_| admit(&ledgers, &store, 100, NOW) == Admission::Admitted).count();
        assert_eq!((admitted, stored(&store), ledger(&ledgers).1), (5, 96, 4));
        // after the write gap, the credit is written and nothing is left
        assert_eq!(admit(&ledgers, &store, 100, NOW + COUNTER_WRITE_GAP_MS), Admission::OverQuota);
        assert_eq!((stored(&store), unpaid(&ledgers)), (100, 0));
    }

    #[test]
    fn an_origin_over_quota_is_refused_from_memory_for_a_minute() {
        let store = MemoryStore::new();
        store.force_put(&counter_key(ORIGIN, NOW), b"100");
        let ledgers = RefCell::new(Ledgers::default());
        assert_eq!(admit(&ledgers, &store, 100, NOW), Admission::OverQuota);
        for i in 0..100 {
            assert_eq!(admit(&ledgers, &store, 100, NOW + f64::from(i) * 500.0), Admission::OverQuota);
        }
        assert_eq!((store.ops().get, store.ops().put), (1, 0));
        assert_eq!(admit(&ledgers, &store, 100, NOW + REFRESH_MS), Admission::OverQuota);
        assert_eq!((store.ops().get, store.ops().put), (2, 0));
        // a raised quota is seen at the next look
        assert_eq!(admit(&ledgers, &store, 200, NOW + 2.0 * REFRESH_MS), Admission::Admitted);
    }

    #[test]
    fn an_unused_reservation_is_never_more_than_what_was_served() {
        // blocks cut short by the quota (1, 2, 2 of 4) while the doubling goes on to 8
        let store = MemoryStore::new();
        store.force_put(&counter_key(ORIGIN, NOW), b"95");
        let ledgers = RefCell::new(Ledgers::default());
        for i in 0..6 {
            admit(&ledgers, &store, 100, NOW + f64::from(i) * 1_200.0);
        }
        assert_eq!((stored(&store), ledger(&ledgers)), (100, (0, 0, 8)));
        // the quota is raised: the next block is 6 (5 served + this one), not 8
        assert_eq!(admit(&ledgers, &store, 1_000, NOW + 6_000.0 + REFRESH_MS), Admission::Admitted);
        assert_eq!((stored(&store), ledger(&ledgers)), (106, (5, 0, 16)), "6 served, 5 unused");
    }

    #[test]
    fn evicted_isolates_leave_only_unwritten_credit_uncounted() {
        // requests a write gap apart are all served out of reservations: nothing is uncounted
        let store = MemoryStore::new();
        let mut admitted = 0;
        for isolate in 0..20 {
            let ledgers = RefCell::new(Ledgers::default());
            for i in 0..(isolate * 7 % 30) {
                let now = NOW + f64::from(isolate) * 100_000.0 + f64::from(i) * 1_200.0;
                assert_eq!(admit(&ledgers, &store, 10_000, now), Admission::Admitted);
                admitted += 1;
                assert!(stored(&store) >= admitted, "stored {} < admitted {admitted}", stored(&store));
            }
            // dropped here: evicted with whatever it had reserved
        }

        // ten a second: those beyond a block ride on credit in the write gap, and only credit not
        // yet written goes uncounted with its isolate
        let store = MemoryStore::new();
        let (mut admitted, mut lost) = (0, 0);
        for isolate in 0..20 {
            let ledgers = RefCell::new(Ledgers::default());
            for i in 0..(isolate * 7 % 30) {
                let now = NOW + f64::from(isolate) * 100_000.0 + f64::from(i) * 100.0;
                assert_eq!(admit(&ledgers, &store, 10_000, now), Admission::Admitted);
                admitted += 1;
                let owed = ledger(&ledgers).1;
                assert!(stored(&store) + lost + owed >= admitted, "stored {} + unwritten {} < admitted {admitted}", stored(&store), lost + owed);
            }
            lost += ledger(&ledgers).1;
        }
        assert!(lost > 0, "some isolates went with credit unwritten");
    }

    #[test]
    fn many_isolates_share_a_quota_within_the_bound() {
        for (seed, eviction_odds) in [(1, 3), (2, 10), (3, 40), (4, 1_000_000)] {
            let quota = 1_000;
            let store = MemoryStore::new();
            let mut isolates: Vec<RefCell<Ledgers>> = (0..8).map(|_| RefCell::default()).collect();
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ seed);
            // admitted; credit evicted isolates took unwritten, and their share of C
            let (mut admitted, mut lost, mut gone_unpaid) = (0, 0, 0);
            for i in 0..5_000 {
                let pick = rng.below(8) as usize;
                if rng.below(eviction_odds) == 0 {
                    let gone = std::mem::take(&mut isolates[pick]); // evicted
                    lost += ledger(&gone).1;
                    gone_unpaid += unpaid(&gone);
                }
                if admit(&isolates[pick], &store, quota, NOW + f64::from(i) * 10.0) == Admission::Admitted {
                    admitted += 1;
                }
                let owed: u64 = isolates.iter().map(|l| ledger(l).1).sum();
                assert!(stored(&store) + owed + lost >= admitted, "undercount: stored {} + unwritten {} < admitted {admitted}", stored(&store), owed + lost);
            }
            let c = gone_unpaid + isolates.iter().map(unpaid).sum::<u64>();
            assert!(admitted <= quota + c, "seed {seed}: admitted {admitted} > quota + C ({c})");
            assert!(admitted >= quota / 2, "seed {seed}: admitted {admitted} < quota / 2");
            // C: the credit evicted isolates took unwritten, and the credit given at the quota's
            // edge, about a write gap of traffic (here 110 requests) for the eight together
            assert!(c <= lost + 110, "seed {seed}: C = {c}, {lost} of it taken unwritten");
        }
    }

    #[test]
    fn concurrent_requests_ride_on_credit_that_the_next_reservation_writes() {
        let store = YieldingStore::new(MemoryStore::new());
        let ledgers = RefCell::new(Ledgers::default());
        let burst = (0..10).map(|_| Ledgers::admit(&ledgers, &store, ORIGIN, 10_000, NOW)).collect();
        assert!(block_on(join_all(burst)).iter().all(|a| *a == Admission::Admitted));
        // one reservation was in flight; the other nine waited for nothing and owe their count
        assert_eq!((store.ops().get, store.ops().put, stored(&store.0)), (1, 1, 1));
        assert_eq!(ledger(&ledgers), (0, 9, 2));
        // within the write gap, one more rides on credit without touching storage
        admit(&ledgers, &store, 10_000, NOW + 1.0);
        assert_eq!((store.ops().put, ledger(&ledgers)), (1, (0, 10, 2)));
        // the next reservation writes the 10 owed and a block paced to the 11 served in the gap
        admit(&ledgers, &store, 10_000, NOW + COUNTER_WRITE_GAP_MS);
        assert_eq!((stored(&store.0), ledger(&ledgers)), (22, (10, 0, 4)), "1 + 10 owed + block of 11; 12 served");
        for _ in 0..10 {
            admit(&ledgers, &store, 10_000, NOW + 2_000.0); // out of the block
        }
        assert_eq!((store.ops().put, ledger(&ledgers)), (2, (0, 0, 4)));
        // a burst of 20 while the next block (paced: 11) is in flight: it pays 10 of the 19
        // credits when it lands
        let burst = (0..20).map(|_| Ledgers::admit(&ledgers, &store, ORIGIN, 10_000, NOW + 2.0 * COUNTER_WRITE_GAP_MS)).collect();
        assert!(block_on(join_all(burst)).iter().all(|a| *a == Admission::Admitted));
        assert_eq!((stored(&store.0), ledger(&ledgers)), (33, (0, 9, 8)), "42 served, 9 owed");
    }

    #[test]
    fn concurrent_isolates_stay_within_quota_plus_credit() {
        let (quota, isolates, concurrency) = (500, 4, 5);
        let store = YieldingStore::new(MemoryStore::new());
        let ledgers: Vec<RefCell<Ledgers>> = (0..isolates).map(|_| RefCell::default()).collect();
        let mut admitted = 0;
        for step in 0..200 {
            let now = NOW + f64::from(step) * 50.0;
            let wave = ledgers.iter().flat_map(|l| (0..concurrency).map(|_| Ledgers::admit(l, &store, ORIGIN, quota, now))).collect();
            admitted += block_on(join_all(wave)).iter().filter(|a| **a == Admission::Admitted).count() as u64;
        }
        let unpaid: u64 = ledgers.iter().map(|l| l.borrow().origins.get(ORIGIN).map_or(0, |l| l.unpaid)).sum();
        assert!(admitted <= quota + unpaid, "admitted {admitted}, unpaid credit {unpaid}");
        assert!(admitted >= quota / 2, "admitted {admitted}");
        // once each isolate writes what it owes, nothing admitted is uncounted
        for l in &ledgers {
            block_on(Ledgers::admit(l, &store, ORIGIN, quota, NOW + 200.0 * 50.0 + REFRESH_MS));
        }
        assert!(stored(&store.0) >= admitted, "stored {} < admitted {admitted}", stored(&store.0));
    }

    #[test]
    fn concurrent_isolates_do_not_lose_each_others_counts() {
        let store = MemoryStore::new();
        let (one, two) = (RefCell::new(Ledgers::default()), RefCell::new(Ledgers::default()));
        for i in 0..150 {
            // a write gap apart: every used-up block is followed by a reservation, not credit
            admit(&one, &store, 10_000, NOW + f64::from(i) * 1_200.0);
            admit(&two, &store, 10_000, NOW + f64::from(i) * 1_200.0);
        }
        // every race lost to the other isolate was re-read and retried
        assert!(store.ops().get > 2, "races were lost");
        assert_eq!((ledger(&one).1, ledger(&two).1), (0, 0));
        assert_eq!(stored(&store), 300 + ledger(&one).0 + ledger(&two).0);
    }

    #[test]
    fn storage_failures_back_off_and_fail_open() {
        let store = MemoryStore::new();
        let ledgers = RefCell::new(Ledgers::default());
        store.fail_next(u32::MAX);
        for i in 0..1_000 {
            // 100 requests a second for 10 s, storage down
            assert_eq!(admit(&ledgers, &store, 10_000, NOW + f64::from(i) * 10.0), Admission::Admitted);
        }
        let attempts = store.ops().get + store.ops().put;
        assert!((5..=10).contains(&attempts), "{attempts} storage attempts in 10 s");
        assert_eq!(ledger(&ledgers).1, 1_000, "all owed");
        store.fail_next(0);
        admit(&ledgers, &store, 10_000, NOW + 12_000.0);
        let (left, owed, _) = ledger(&ledgers);
        assert_eq!((stored(&store), owed), (1_001 + left, 0), "the credit is written by the next reservation");
        assert_eq!(unpaid(&ledgers), 0, "within the quota");
    }

    #[test]
    fn the_backoff_is_one_to_two_seconds_and_jittered() {
        let waits: Vec<f64> = (0..50).map(|i| NOW + f64::from(i) * 1.5).map(|now| retry_at(ORIGIN, now) - now).collect();
        assert!(waits.iter().all(|w| (BACKOFF_MS..2.0 * BACKOFF_MS).contains(w)), "{waits:?}");
        assert!(waits.iter().any(|w| *w < 1_400.0) && waits.iter().any(|w| *w > 1_600.0), "{waits:?}");
    }

    #[test]
    fn r2s_write_limit_on_the_hot_key_costs_credit_not_counts() {
        let platform = TestPlatform::at(NOW);
        let store = MemoryStore::new();
        store.limit_writes(1_000.0, platform.clock_fn());
        let isolates: Vec<RefCell<Ledgers>> = (0..3).map(|_| RefCell::default()).collect();
        let mut rng = Rng(7);
        let mut admitted = 0;
        for i in 0..3_000 {
            platform.clock.set(NOW + f64::from(i) * 5.0); // 200 requests a second
            let isolate = &isolates[rng.below(3) as usize];
            if run(&platform, Ledgers::admit(isolate, &store, ORIGIN, 1_000_000, platform.clock.get())) == Admission::Admitted {
                admitted += 1;
            }
        }
        assert_eq!(admitted, 3_000);
        for (n, isolate) in isolates.iter().enumerate() {
            platform.clock.set(NOW + 20_000.0 + 2_000.0 * n as f64);
            run(&platform, Ledgers::admit(isolate, &store, ORIGIN, 1_000_000, platform.clock.get()));
        }
        assert!(stored(&store) >= admitted + 3, "stored {} < admitted {}", stored(&store), admitted + 3);
        // about one write attempt a second per isolate (15 s each), not one per request
        assert!(store.ops().put <= 3 * 20, "{} writes", store.ops().put);
    }

    #[test]
    fn a_write_that_landed_but_reported_an_error_counts_once() {
        let store = MemoryStore::new();
        let ledgers = RefCell::new(Ledgers::default());
        store.ghost_next_writes(2);
        for i in 0..300 {
            assert_eq!(admit(&ledgers, &store, 10_000, NOW + f64::from(i) * 20.0), Admission::Admitted);
        }
        let (left, owed, _) = ledger(&ledgers);
        assert_eq!(stored(&store) + owed, 300 + left, "stored + unwritten credit = admitted + unused reservation");
        admit(&ledgers, &store, 10_000, NOW + 300.0 * 20.0 + COUNTER_WRITE_GAP_MS);
        assert_eq!(stored(&store), 301 + ledger(&ledgers).0, "stored = admitted + unused reservation");
        assert_eq!(ledger(&ledgers).1, 0);
    }

    #[test]
    fn the_ledgers_are_capped_and_the_least_recently_used_goes() {
        let store = MemoryStore::new();
        let ledgers = RefCell::new(Ledgers::default());
        block_on(Ledgers::admit(&ledgers, &store, ORIGIN, 10, NOW));
        for i in 0..MAX_ORIGINS - 1 {
            block_on(Ledgers::admit(&ledgers, &store, &format!("https://{i}.example"), 10, NOW));
        }
        block_on(Ledgers::admit(&ledgers, &store, ORIGIN, 10, NOW));
        for i in 0..5 {
            block_on(Ledgers::admit(&ledgers, &store, &format!("https://new{i}.example"), 10, NOW));
        }
        let origins = &ledgers.borrow().origins;
        assert_eq!(origins.len(), MAX_ORIGINS);
        assert!(origins.contains_key(ORIGIN), "recently used");
        assert!(!origins.contains_key("https://0.example") && !origins.contains_key("https://4.example"));
        assert!(origins.contains_key("https://5.example"));
    }

    #[test]
    fn a_new_month_starts_a_new_counter_and_block() {
        let store = MemoryStore::new();
        let ledgers = RefCell::new(Ledgers::default());
        let december = 1_796_083_200_000.0; // 2026-12-01T00:00:00Z
        for i in 0..10 {
            admit(&ledgers, &store, 10_000, december - 20_000.0 + f64::from(i) * 1_200.0);
        }
        admit(&ledgers, &store, 10_000, december);
        assert_eq!(store.peek(&counter_key(ORIGIN, december)).map(|b| parse_count(&b)), Some(1));
        assert_eq!(ledger(&ledgers), (0, 0, 2));
        assert_eq!(stored(&store), 15, "November: blocks 1 + 2 + 4 + 8, 10 used");
    }

    #[test]
    fn a_burst_from_one_isolate_makes_one_counter_write() {
        let store = MemoryStore::new();
        let ledgers = RefCell::new(Ledgers::default());
        // 100 requests in 0.5 s: a block of 1, then credit for the rest of the write gap
        for i in 0..100 {
            assert_eq!(admit(&ledgers, &store, 10_000, NOW + f64::from(i) * 5.0), Admission::Admitted);
        }
        assert_eq!((store.ops().get, store.ops().put), (1, 1), "one read, one write");
        assert_eq!((stored(&store), ledger(&ledgers)), (1, (0, 99, 2)));
        assert_eq!(admit(&ledgers, &store, 10_000, NOW + COUNTER_WRITE_GAP_MS - 1.0), Admission::Admitted);
        assert_eq!((store.ops().put, ledger(&ledgers).1), (1, 100), "still in the write gap");
        // the next reservation writes the credit and a block for the pace seen (101 in 1.2 s:
        // 93 a gap); its unused 92 are less than the 102 served
        assert_eq!(admit(&ledgers, &store, 10_000, NOW + 1_200.0), Admission::Admitted);
        assert_eq!((store.ops().get, store.ops().put), (1, 2));
        assert_eq!((stored(&store), ledger(&ledgers)), (1 + 100 + 93, (92, 0, 4)), "102 served + 92 unused");
        assert_eq!(unpaid(&ledgers), 0, "the credit was written within the quota");
    }

    #[test]
    fn a_steady_rate_writes_a_gap_apart_and_credit_does_not_pile_up() {
        let platform = TestPlatform::at(NOW);
        let store = MemoryStore::new();
        store.limit_writes(1_000.0, platform.clock_fn()); // R2: one write a second per key
        let ledgers = RefCell::new(Ledgers::default());
        for i in 0..1_000 {
            platform.clock.set(NOW + f64::from(i) * 10.0); // 100 requests a second for 10 s
            let admission = run(&platform, Ledgers::admit(&ledgers, &store, ORIGIN, 10_000, platform.clock.get()));
            assert_eq!(admission, Admission::Admitted);
            let (left, owed, served) = ledgers.borrow().origins.get(ORIGIN).map_or((0, 0, 0), |l| (l.left, l.debt, l.served));
            assert!(left <= served, "request {i}: unused {left} > served {served}");
            // the first gap rides on credit (a block of 1); from then on, paced blocks cover it
            assert!(i < 110 || owed == 0, "request {i}: {owed} owed");
        }
        // writes at 0, 1.1, 2.2, … 9.9 s: none met R2's limit
        assert_eq!(store.writes_of(&counter_key(ORIGIN, NOW)), 10);
        assert_eq!((store.ops().get, store.ops().put), (1, 10));
        assert_eq!(store.max_writes_within(COUNTER_WRITE_GAP_MS), 1);
        assert_eq!((stored(&store), ledger(&ledgers)), (1_100, (100, 0, 100)), "1 + 109 owed + 9 blocks of 110; 1,000 served");
    }

    #[test]
    fn a_reservation_that_never_answers_is_abandoned_after_a_while() {
        let store = YieldingStore::new(MemoryStore::new());
        let ledgers = RefCell::new(Ledgers::default());
        {
            let mut stuck = pin!(Ledgers::admit(&ledgers, &store, ORIGIN, 10_000, NOW));
            let poll = stuck.as_mut().poll(&mut Context::from_waker(Waker::noop()));
            assert!(poll.is_pending(), "suspended in storage");
            // its request goes away; the future is never polled again
        }
        assert_eq!(admit(&ledgers, &store, 10_000, NOW + STUCK_MS - 1.0), Admission::Admitted);
        assert_eq!(store.ops().get, 0, "on credit while the reservation may still answer");
        assert_eq!(admit(&ledgers, &store, 10_000, NOW + STUCK_MS), Admission::Admitted);
        assert_eq!(stored(&store.0), 2, "one owed + a block of 1 (the stuck request never wrote)");
    }
}

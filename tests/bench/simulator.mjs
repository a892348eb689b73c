// A simulated p2pcf client: replays what p2pcf@1.3.14 sends, on its schedule, with time
// compressed by a factor (all intervals and the expiry `x` divided by it; body timestamps stay on
// the real clock so the worker accepts them).
//
// Sequence per peer, as the real client: a read-only first poll (and an immediate publish when the
// room is empty); then identified polls, carrying `p` only when packages changed or the data is
// about to expire (heartbeat at 90 s of 120 s); fast polling (1.5 s) for 10 s after any change in
// the peer list, slow polling (5 s) otherwise; handshake packages (peer B sends its offer package
// when it first sees peer A, A answers with its own when it receives it; packages are dropped 60 s
// after they were made); a DELETE with the delete key on leave.
import { randomBytes } from 'node:crypto'

const DTLS = randomBytes(32).toString('base64')
const CANDIDATES = [
  'candidate:842163049 1 udp 1677729535 203.0.113.7 54321 typ srflx raddr 0.0.0.0 rport 0 generation 0 ufrag abcd network-cost 999',
  'candidate:1510613869 1 udp 2122260223 192.168.1.20 54321 typ host generation 0 ufrag abcd network-id 1',
  'candidate:3015341553 1 tcp 1518280447 192.168.1.20 9 typ host tcptype active generation 0 ufrag abcd network-id 1'
]

/** The p2pcf client's defaults, in real (uncompressed) milliseconds. */
export const CLIENT_TIMING = {
  fastPollingRateMs: 1500,
  fastPollingDurationMs: 10000,
  slowPollingRateMs: 5000,
  stateExpirationIntervalMs: 120000,
  stateHeartbeatWindowMs: 30000,
  packageLifetimeMs: 60000
}

/** Deterministic pseudo-random numbers (mulberry32), so both workers get the same schedule. */
export function seeded (seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

/** Shared tallies for one run against one worker. */
export class Tally {
  constructor () {
    this.requests = 0
    this.ops = { get: 0, put: 0, delete: 0, list: 0 }
    this.pollMs = []
    this.errors = 0
  }

  record (res, ms, isPoll) {
    this.requests++
    if (res.status !== 200) {
      this.errors++
      if (process.env.BENCH_DEBUG) console.error(res.status, res.headers.get('server-timing'))
    }
    const match = /get=(\d+) put=(\d+) delete=(\d+) list=(\d+)/.exec(res.headers.get('server-timing') || '')
    if (match) {
      const [get, put, del, list] = match.slice(1).map(Number)
      this.ops.get += get
      this.ops.put += put
      this.ops.delete += del
      this.ops.list += list
    }
    if (isPoll) this.pollMs.push(ms)
  }
}

export class SimPeer {
  constructor ({ url, room, id, compression, tally, rng }) {
    Object.assign(this, { url, room, compression, tally })
    const t = Object.fromEntries(Object.entries(CLIENT_TIMING).map(([k, v]) => [k, v / compression]))
    this.timing = t
    this.session = `s${id}-${Math.floor(rng() * 1e9).toString(36)}`
    this.context = `c${id}-${Math.floor(rng() * 1e9).toString(36)}`
    this.client = `client-${id}`
    this.joinedAt = Date.now()
    this.packages = []
    this.lastPackages = null
    this.dataTimestamp = null
    this.deleteKey = null
    this.sentFirstPoll = false
    this.knownPeers = new Set()
    this.answered = new Set()
    /** Real time (ms) each remote peer's package first reached this peer. */
    this.packageFrom = new Map()
    this.stopFastAt = 0
    this.stopped = false
    this.lastSeen = []
  }

  data () {
    return [this.session, this.client, false, DTLS, this.joinedAt, ['203.0.113.7']]
  }

  async post (payload, { leave = false, isPoll = false } = {}) {
    const headers = { 'Content-Type': 'application/json ' }
    if (leave) headers['X-Worker-Method'] = 'DELETE'
    const started = performance.now()
    let res, text
    try {
      res = await fetch(this.url, { method: 'POST', headers, body: JSON.stringify(payload), keepalive: leave })
      text = await res.text()
    } catch (err) {
      this.tally.requests++
      this.tally.errors++
      if (process.env.BENCH_DEBUG) console.error('network error', err.cause?.code ?? err.message)
      return null
    }
    this.tally.record(res, performance.now() - started, isPoll)
    try { return JSON.parse(text) } catch { return null }
  }

  /** One step of the client loop; returns the delay before the next one. */
  async step () {
    const now = Date.now()
    const payload = { r: this.room, k: this.context }
    const expired = this.dataTimestamp === null || now - this.dataTimestamp >= this.timing.stateExpirationIntervalMs - this.timing.stateHeartbeatWindowMs
    const packagesChanged = this.lastPackages !== JSON.stringify(this.packages)
    let includePackages = false
    if (expired || packagesChanged) {
      this.dataTimestamp = now
      this.packages = this.packages.filter(p => now - p[7] <= this.timing.packageLifetimeMs)
      includePackages = true
    }
    if (this.sentFirstPoll) {
      Object.assign(payload, { d: this.data(), t: this.dataTimestamp, x: this.timing.stateExpirationIntervalMs })
      if (includePackages) {
        payload.p = this.packages
        this.lastPackages = JSON.stringify(this.packages)
      }
    }
    const answer = await this.post(payload, { isPoll: !payload.p })
    if (!answer || !Array.isArray(answer.ps)) return this.timing.slowPollingRateMs
    if (answer.dk) this.deleteKey = answer.dk
    if (answer.ps.length === 0 && !this.sentFirstPoll) {
      Object.assign(payload, { d: this.data(), t: this.dataTimestamp, x: this.timing.stateExpirationIntervalMs, p: this.packages })
      this.lastPackages = JSON.stringify(this.packages)
      const published = await this.post(payload)
      if (published?.dk) this.deleteKey = published.dk
    }
    this.sentFirstPoll = true
    this.handle(answer, now)
    const ids = answer.ps.map(row => row[0])
    const changed = ids.length !== this.lastSeen.length || ids.some(id => !this.lastSeen.includes(id))
    this.lastSeen = ids
    if (changed) this.stopFastAt = now + this.timing.fastPollingDurationMs
    return now < this.stopFastAt ? this.timing.fastPollingRateMs : this.timing.slowPollingRateMs
  }

  /** The handshake: as peer B, send an offer package to each new peer A; as A, answer B's package. */
  handle (answer, now) {
    for (const row of answer.ps) {
      const [session, , , , joinedAt] = row
      const iAmA = this.joinedAt === joinedAt ? this.session > session : this.joinedAt > joinedAt
      if (!iAmA && !this.knownPeers.has(session)) {
        this.knownPeers.add(session)
        this.packages.push([session, this.session, null, null, null, 'ufragufragu1', 'p'.repeat(32), now, CANDIDATES])
      }
    }
    for (const pkg of answer.pk || []) {
      const from = pkg[1]
      if (!this.packageFrom.has(from)) this.packageFrom.set(from, Date.now())
      if (this.answered.has(from)) continue
      this.answered.add(from)
      this.knownPeers.add(from)
      this.packages.push([from, this.session, 'ufragufragu2', 'q'.repeat(32), DTLS, null, null, now, CANDIDATES])
    }
  }

  /** Run the client loop until `leaveAt` (ms, real clock), then leave. */
  async run (leaveAt) {
    while (!this.stopped && Date.now() < leaveAt) {
      const delay = await this.step()
      await sleep(Math.min(delay, Math.max(0, leaveAt - Date.now())))
    }
    await this.leave()
  }

  async leave () {
    if (this.stopped) return
    this.stopped = true
    if (!this.deleteKey) return
    const payload = { r: this.room, k: this.context, d: this.data(), t: Date.now(), x: this.timing.stateExpirationIntervalMs, dk: this.deleteKey }
    await this.post(payload, { leave: true })
  }
}

// Scenarios under R2's limits, shared by the test suite (tests/suites/r2-limits.test.mjs, short)
// and `make bench` (tests/bench/run.mjs, full length): simulated p2pcf@1.3.14 clients
// (tests/bench/simulator.mjs) with time compressed `compression` times. Results are in simulated
// milliseconds, so they compare with the real client's timings.
import { SimPeer, Tally, seeded } from '../bench/simulator.mjs'
import { randomId } from './p2pcf.mjs'

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

/** The vars that make a worker face R2's limits at this compression (both workers get the same). */
export function emulationVars (compression, failureShare = 0.02) {
  const interval = Math.round(1000 / compression)
  return { EMULATE_R2_WRITE_INTERVAL_MS: interval, EMULATE_R2_FAILURE_SHARE: failureShare, R2_WRITE_INTERVAL_MS: interval }
}

async function observe (url, room) {
  try {
    const res = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ r: room }) })
    return new Set((JSON.parse(await res.text()).ps || []).map(row => row[0]))
  } catch {
    return new Set()
  }
}

function makePeers (url, room, count, compression, tally, seed) {
  const rng = seeded(seed)
  return Array.from({ length: count }, (_, id) => new SimPeer({ url, room, id, compression, tally, rng }))
}

/**
 * `peers` clients join one fresh room at the same moment. Returns the simulated time until an
 * observer sees all of them (polling every simulated 250 ms, up to `limitMs`), and the tally.
 */
export async function joinStorm (url, { peers = 20, compression = 20, limitMs = 30_000, seed = 1 } = {}) {
  const room = randomId('storm-')
  const tally = new Tally()
  const sims = makePeers(url, room, peers, compression, tally, seed)
  const start = Date.now()
  const end = start + limitMs / compression + 2000
  const runs = sims.map(peer => { peer.joinedAt = Date.now(); return peer.run(end) })
  let visibleAfterMs = null
  let maxSeen = 0
  while (Date.now() < start + limitMs / compression) {
    const seen = await observe(url, room)
    maxSeen = Math.max(maxSeen, sims.filter(peer => seen.has(peer.session)).length)
    if (sims.every(peer => seen.has(peer.session))) {
      visibleAfterMs = (Date.now() - start) * compression
      break
    }
    await sleep(250 / compression)
  }
  sims.forEach(peer => { peer.stopped = true })
  await Promise.all(runs)
  return { visibleAfterMs, maxSeen, tally }
}

/**
 * A steady room of `steady` clients (joined over `joinSpreadMs`, then left alone until every one
 * polls slowly), then one newcomer. Returns, in simulated ms after the newcomer started, when the
 * package of each steady peer reached it (p50 and worst), and how many never did.
 */
export async function newcomer (url, { steady = 50, compression = 20, joinSpreadMs = 60_000, settleMs = 40_000, waitMs = 30_000, seed = 2 } = {}) {
  const room = randomId('newcomer-')
  const tally = new Tally()
  const rng = seeded(seed)
  const sims = makePeers(url, room, steady + 1, compression, tally, seed)
  const latest = sims.pop()
  const end = Date.now() + (joinSpreadMs + settleMs + waitMs) / compression + 5000
  const runs = sims.map(async peer => {
    await sleep((rng() * joinSpreadMs) / compression)
    peer.joinedAt = Date.now()
    await peer.run(end)
  })
  await sleep((joinSpreadMs + settleMs) / compression)
  const started = Date.now()
  latest.joinedAt = started
  const newcomerRun = latest.run(started + waitMs / compression)
  while (Date.now() < started + waitMs / compression && latest.packageFrom.size < steady) await sleep(50 / compression)
  const delays = [...latest.packageFrom.values()].map(at => (at - started) * compression).sort((a, b) => a - b)
  latest.stopped = true
  sims.forEach(peer => { peer.stopped = true })
  await Promise.all([...runs, newcomerRun])
  return {
    received: delays.length,
    missing: steady - delays.length,
    p50Ms: delays[Math.floor(delays.length / 2)] ?? null,
    worstMs: delays.length === steady ? delays[delays.length - 1] : null,
    tally
  }
}

/**
 * `peers` clients join over `joinSpreadMs` and stay for `durationMs` (simulated). From
 * `joinSpreadMs + 30 s` on, an observer samples the room every simulated 5 s; a flap is a sample
 * missing a peer that has published and not left. Returns flaps, samples and the tally.
 */
export async function steadyRoom (url, { peers = 100, compression = 20, durationMs = 600_000, joinSpreadMs = 60_000, seed = 3 } = {}) {
  const room = randomId('steady-')
  const tally = new Tally()
  const rng = seeded(seed)
  const sims = makePeers(url, room, peers, compression, tally, seed)
  const start = Date.now()
  const end = start + durationMs / compression
  const runs = sims.map(async peer => {
    await sleep((rng() * joinSpreadMs) / compression)
    peer.joinedAt = Date.now()
    await peer.run(end)
  })
  let flaps = 0
  let samples = 0
  const flapped = new Set()
  await sleep((joinSpreadMs + 30_000) / compression) // from 30 s after the last join
  while (Date.now() < end - 10_000 / compression) {
    const expected = sims.filter(peer => peer.deleteKey && !peer.stopped)
    const seen = await observe(url, room)
    samples++
    for (const peer of expected) {
      if (!seen.has(peer.session)) {
        flaps++
        flapped.add(peer.session)
      }
    }
    await sleep(5000 / compression)
  }
  await Promise.all(runs)
  return { flaps, flappedPeers: flapped.size, samples, tally }
}

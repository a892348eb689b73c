// Our worker facing R2's limits (tests/emulation/r2-limits.mjs): one write per second per key and
// 2% transient failures, scaled with the simulator's 5x time compression, every request alone
// (our worker shares nothing between requests). Simulated unmodified p2pcf@1.3.14 clients must get
// nothing but 200s, every join must show, every handshake package must arrive. `make bench` runs
// the same scenarios at full length, beside the reference. (5x, not more: local R2's round trips
// do not compress, and at 20x one of them is a tenth of the scaled second, which real R2's never is.)
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startWorker } from '../lib/workers.mjs'
import { emulationVars, joinStorm, newcomer, steadyRoom } from '../lib/scenarios.mjs'
import { SimPeer, Tally, seeded } from '../bench/simulator.mjs'
import { randomId, send } from '../lib/p2pcf.mjs'

const COMPRESSION = 5
let worker

before(async () => { worker = await startWorker('ours-emulated', { vars: emulationVars(COMPRESSION), restart: true }) })
after(() => worker?.stop())

const stats = async () => (await fetch(worker.url + '/__r2/stats')).json()

test('20 peers joining one fresh room at once are all visible within 10 s, all answered 200', async () => {
  const { visibleAfterMs, tally } = await joinStorm(worker.url, { peers: 20, compression: COMPRESSION })
  console.log(`storm: all 20 visible after ${visibleAfterMs} simulated ms; ${tally.requests} requests, ${tally.errors} non-200`)
  assert.equal(tally.errors, 0)
  assert.ok(visibleAfterMs !== null && visibleAfterMs <= 10_000, `visible after ${visibleAfterMs} ms`)
})

test('a newcomer in a steady room gets every answer package as soon as polling allows', async () => {
  const result = await newcomer(worker.url, { steady: 20, compression: COMPRESSION, joinSpreadMs: 20_000, settleMs: 30_000, waitMs: 20_000 })
  console.log(`newcomer in 20-peer room: ${result.received}/20 packages, p50 ${result.p50Ms} ms, worst ${result.worstMs} ms (simulated); ${result.tally.errors} non-200`)
  assert.equal(result.tally.errors, 0)
  assert.equal(result.missing, 0)
  // the newcomer's join lands (≤ 1.6 s: a write gap plus jitter), an idle peer polls every 5 s and
  // publishes its answer on its next 1.5 s step, which lands (≤ 1.6 s), and the newcomer polls every
  // 1.5 s: 11.2 s at worst, plus local round trips
  assert.ok(result.worstMs <= 12_500, `worst ${result.worstMs} ms`)
})

test('a steady 40-peer room for 2 simulated minutes: no non-200, nobody dropped or flapping', async () => {
  const result = await steadyRoom(worker.url, { peers: 40, compression: COMPRESSION, durationMs: 120_000, joinSpreadMs: 30_000 })
  console.log(`steady 40: ${result.samples} samples, ${result.flaps} flaps, ${result.tally.requests} requests, ${result.tally.errors} non-200`)
  assert.equal(result.tally.errors, 0)
  assert.equal(result.flaps, 0)
})

test('bench simulator smoke run: 4 clients, no errors, everyone listed, packages delivered', async () => {
  const room = randomId('smoke-')
  const tally = new Tally()
  const rng = seeded(7)
  const peers = Array.from({ length: 4 }, (_, id) => new SimPeer({ url: worker.url, room, id, compression: COMPRESSION, tally, rng }))
  const end = Date.now() + 8000
  const runs = peers.map(async (peer, i) => {
    await new Promise(resolve => setTimeout(resolve, i * 300))
    peer.joinedAt = Date.now()
    await peer.run(end)
  })
  await new Promise(resolve => setTimeout(resolve, 7000))
  const listed = (await send(worker.url, { body: { r: room } })).json.ps.map(row => row[0])
  await Promise.all(runs)
  assert.equal(tally.errors, 0)
  assert.deepEqual(listed.sort(), peers.map(p => p.session).sort())
  // every pair completed the package exchange: each peer answered or was answered by every other
  for (const peer of peers) assert.equal(peer.knownPeers.size, 3, `${peer.session} exchanged packages with all`)
  assert.ok(tally.ops.get > 0 && tally.ops.put > 0, 'operations were counted from Server-Timing')
})

test('no key was written twice within the (scaled) second; transient failures were injected', async () => {
  const s = await stats()
  console.log(`emulated R2: ${s.put} puts, ${s.get} gets, ${s.list} lists, ${s.rateLimited} refused as 429, ${s.injectedFailures} injected failures; most write attempts on one key within an interval: ${s.maxAttemptsPerKeyPerInterval}`)
  assert.ok(s.injectedFailures > 0, 'the emulation injected failures')
  assert.equal(s.maxWritesPerKeyPerInterval, 1)
})

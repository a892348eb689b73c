// The polling schedule with fake timers: fast → slow → idle, heartbeat at 90 s, DELETE on destroy.
import { test, mock, beforeEach, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import { P2PCF } from '../src/p2pcf.js'

const HEX = Array(32).fill('AB').join(':')

/** A WebRTC stand-in for the network probe: one offer with a fingerprint, no candidates. */
class FakePeerConnection {
  static async generateCertificate () { return {} }
  createDataChannel () { return {} }
  async createOffer () { return { type: 'offer', sdp: `v=0\r\na=ice-ufrag:abcd\r\na=ice-pwd:${'p'.repeat(24)}\r\na=fingerprint:sha-256 ${HEX}\r\n` } }
  async setLocalDescription () { queueMicrotask(() => this.onicecandidate?.({ candidate: null })) }
  close () {}
}

function fakeWorker (answer = () => ({ ps: [], pk: [], dk: 'delete-me' })) {
  const calls = []
  const fetch = async (url, init) => {
    calls.push({ at: Date.now(), url, body: JSON.parse(init.body), headers: init.headers, keepalive: init.keepalive })
    const body = answer(calls.length)
    return { ok: true, status: 200, json: async () => body, text: async () => JSON.stringify(body) }
  }
  return { calls, fetch }
}

beforeEach(() => mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_700_000_000_000 }))
afterEach(() => mock.timers.reset())

const flush = async () => { for (let i = 0; i < 20; i++) await new Promise(resolve => setImmediate(resolve)) }

async function advance (ms, step = 250) {
  for (let t = 0; t < ms; t += step) {
    mock.timers.tick(step)
    await flush()
  }
}

function client (worker, options = {}) {
  return new P2PCF('client-1', 'room-1', { workerUrl: 'http://worker.test/', rtc: { RTCPeerConnection: FakePeerConnection }, fetch: worker.fetch, stunIceServers: [], contextId: 'ctx-fixed', ...options })
}

test('first poll is read-only, an empty room gets an immediate publish, then fast polling', async () => {
  const worker = fakeWorker()
  const p2pcf = client(worker)
  await p2pcf.start()
  await flush()
  assert.deepEqual(Object.keys(worker.calls[0].body).sort(), ['k', 'r'], 'read-only first poll')
  assert.equal(worker.calls[0].url, 'http://worker.test')
  assert.deepEqual(Object.keys(worker.calls[1].body).sort(), ['d', 'k', 'p', 'r', 't', 'x'], 'immediate publish')
  assert.equal(worker.calls[1].body.d[3].length, 44)
  await advance(9_000)
  const gaps = worker.calls.slice(2).map((c, i) => c.at - worker.calls[1 + i].at)
  assert.ok(gaps.length >= 5 && gaps.every(g => g === 1500), `fast polling every 1.5 s: ${gaps}`)
  assert.ok(worker.calls.slice(2).every(c => c.body.d && !c.body.p), 'identified polls without packages')
  p2pcf.destroy()
})

test('slow polling after 10 s, a heartbeat publish at 90 s, and DELETE on destroy', async () => {
  const worker = fakeWorker()
  const p2pcf = client(worker)
  const started = Date.now()
  await p2pcf.start()
  await advance(40_000)
  const late = worker.calls.filter(c => c.at - started > 12_000 && c.at - started < 40_000)
  const lateGaps = late.slice(1).map((c, i) => c.at - late[i].at)
  assert.ok(lateGaps.length >= 4 && lateGaps.every(g => g === 5000), `slow polling every 5 s: ${lateGaps}`)

  await advance(60_000)
  const publishes = worker.calls.filter(c => c.body.p).map(c => c.at - started)
  assert.equal(publishes.length, 2, `the join publish and one heartbeat: ${publishes}`)
  assert.ok(publishes[1] >= 90_000 && publishes[1] < 95_000, `heartbeat at ${publishes[1]} ms`)

  const before = worker.calls.length
  p2pcf.destroy()
  await flush()
  const leave = worker.calls[before]
  assert.equal(leave.headers['X-Worker-Method'], 'DELETE')
  assert.equal(leave.keepalive, true)
  assert.equal(leave.body.dk, 'delete-me')
  await advance(120_000, 5_000)
  assert.equal(worker.calls.length, before + 1, 'no requests after destroy')
  assert.equal(p2pcf._timers.size, 0, 'no timers left')
})

test('idle polling after idlePollingAfterMs without changes', async () => {
  const worker = fakeWorker()
  const p2pcf = client(worker, { idlePollingAfterMs: 60_000, idlePollingRateMs: 20_000 })
  const started = Date.now()
  await p2pcf.start()
  await advance(150_000, 1_000)
  const idle = worker.calls.filter(c => c.at - started > 70_000)
  const gaps = idle.slice(1).map((c, i) => c.at - idle[i].at)
  assert.ok(gaps.length >= 3 && gaps.every(g => g === 20_000), `idle polling every 20 s: ${gaps}`)
  p2pcf.destroy()
})

test('idlePollingRateMs = Infinity stops polling', async () => {
  const worker = fakeWorker()
  const p2pcf = client(worker, { idlePollingAfterMs: 15_000, idlePollingRateMs: Infinity })
  await p2pcf.start()
  await advance(30_000)
  const count = worker.calls.length
  await advance(200_000, 5_000)
  assert.equal(worker.calls.length, count)
  p2pcf.destroy()
})

test('destroy() during start() leaves nothing behind: no probe, no poll, no timer, no page listener', async t => {
  const listeners = []
  globalThis.addEventListener = type => listeners.push(type)
  globalThis.removeEventListener = () => {}
  t.after(() => { delete globalThis.addEventListener; delete globalThis.removeEventListener })
  let connections = 0
  class Counted extends FakePeerConnection {
    constructor () { super(); connections++ }
    async setLocalDescription () {} // gathering never ends: the probe waits
  }
  for (const stopAt of ['certificate', 'probe']) {
    connections = 0
    const worker = fakeWorker()
    const p2pcf = client(worker, { rtc: { RTCPeerConnection: Counted } })
    const starting = p2pcf.start()
    if (stopAt === 'probe') await flush() // the probe's connection exists and waits for candidates
    p2pcf.destroy()
    await starting
    await advance(30_000, 1_000)
    assert.equal(connections, stopAt === 'probe' ? 1 : 0, `destroyed at the ${stopAt}: no (further) connection`)
    assert.equal(worker.calls.length, 0, `destroyed at the ${stopAt}: no request`)
    assert.equal(p2pcf._timers.size, 0)
    assert.deepEqual(listeners, [], `destroyed at the ${stopAt}: no page listener left behind`)
  }
})

test('a peer that never connects is reported with peerfailed, not peerclose', async () => {
  const HEX44 = Buffer.alloc(32, 1).toString('base64')
  class SilentPeerConnection extends FakePeerConnection {
  async setRemoteDescription () {}
  async createAnswer () { return this.createOffer() }
  async addIceCandidate () {}
  }
  // it started after us, so we are peer B and open the connection
  const remote = ['remote-session', 'remote-client', false, HEX44, Date.now() + 1000, []]
  const worker = fakeWorker(n => ({ ps: n > 1 ? [[...remote, 5]] : [], pk: [], dk: 'k' }))
  const p2pcf = client(worker, { rtc: { RTCPeerConnection: SilentPeerConnection } })
  const events = []
  p2pcf.on('peerfailed', (peer, reason) => events.push(['peerfailed', peer.id, reason]))
  p2pcf.on('peerclose', peer => events.push(['peerclose', peer.id]))
  await p2pcf.start()
  await advance(20_000)
  assert.deepEqual(events, [['peerfailed', 'remote-session', 'did not connect in time']])
  p2pcf.destroy()
})

test('polling stays fast while a listed peer has no connection (as p2pcf), not only for 10 s', async () => {
  // A peer that joined before us: we answer it (A) once its package comes, which it has not sent.
  const row = ['other-session', 'client-2', false, 'q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=', 1000, [], 1_700_000_000_000]
  const worker = fakeWorker(() => ({ ps: [row], pk: [], dk: 'delete-me' }))
  const p2pcf = client(worker)
  await p2pcf.start()
  await advance(30_000)
  const late = worker.calls.filter(c => c.at - worker.calls[0].at > 12_000)
  const gaps = late.slice(1).map((c, i) => c.at - late[i].at)
  assert.ok(gaps.length >= 8 && gaps.every(g => g === 1500), `still fast 12-30 s in: ${gaps}`)
  p2pcf.destroy()
})

test('the poll interval counts from the start of the request, as p2pcf\'s', async () => {
  const worker = fakeWorker()
  const slowFetch = async (url, init) => {
    await new Promise(resolve => setTimeout(resolve, 1000)) // every request takes a second
    return worker.fetch(url, init)
  }
  const p2pcf = client({ fetch: slowFetch })
  await p2pcf.start()
  await advance(9_000)
  const starts = worker.calls.slice(2).map(c => c.at - 1000) // when each request was sent
  const gaps = starts.slice(1).map((at, i) => at - starts[i])
  assert.ok(gaps.length >= 3 && gaps.every(g => g === 1500), `a poll every 1.5 s, not every 2.5 s: ${gaps}`)
  p2pcf.destroy()
})

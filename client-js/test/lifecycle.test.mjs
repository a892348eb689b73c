// P2PCF's life around the worker, without WebRTC: the probe is stubbed, fetch is scripted.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { P2PCF } from '../src/p2pcf.js'

const NETWORK = { isSymmetric: false, reflexiveIps: [], fingerprint: 'fp-0' }

/** A client whose probe and fetch are ours: `requests` records every body, `answer(body)` replies. */
function scripted (answer, options = {}) {
  const requests = []
  const fetch = async (url, init) => {
    const body = JSON.parse(init.body)
    requests.push({ body, method: init.headers['X-Worker-Method'] || 'POST' })
    const reply = await answer(body, init)
    return new Response(JSON.stringify(reply), { status: 200 })
  }
  const p2pcf = new P2PCF('client-1', 'room-1', { fetch, rtc: { RTCPeerConnection: {} }, contextId: 'ctx', ...options })
  p2pcf._probe = async () => ({ ...NETWORK })
  return { p2pcf, requests }
}

test('bad client and room ids get the intended message, not a TypeError', () => {
  assert.throws(() => new P2PCF(null, 'room-1'), /Client ID must be at least four characters/)
  assert.throws(() => new P2PCF('client-1', 42), /Room ID must be at least four characters/)
})

test('destroyed while the first publish is in flight: the leave goes out when the delete key arrives', async () => {
  let release
  const { p2pcf, requests } = scripted(body => {
    if (!body.d) return { ps: [], pk: [] } // the read-only first poll: an empty room
    if (body.dk) return {}
    return new Promise(resolve => { release = () => resolve({ ps: [], pk: [], dk: 'the-key' }) })
  })
  await p2pcf.start()
  await new Promise(resolve => setTimeout(resolve, 20))
  p2pcf.destroy() // the publish has not answered yet: no delete key to leave with
  assert.equal(requests.filter(r => r.method === 'DELETE').length, 0)
  release()
  await new Promise(resolve => setTimeout(resolve, 20))
  const leaves = requests.filter(r => r.method === 'DELETE')
  assert.equal(leaves.length, 1, 'the row would otherwise stay for two minutes')
  assert.equal(leaves[0].body.dk, 'the-key')
})

test('a hung poll is abandoned after fetchTimeoutMs and polling goes on', async () => {
  let polls = 0
  const errors = []
  const { p2pcf } = scripted((body, init) => {
    polls++
    if (polls === 1) return new Promise((resolve, reject) => init.signal.addEventListener('abort', () => reject(init.signal.reason)))
    return { ps: [{ length: 0 }].slice(1), pk: [] }
  }, { fetchTimeoutMs: 50, slowPollingRateMs: 10, fastPollingRateMs: 10 })
  p2pcf.on('error', err => errors.push(err))
  await p2pcf.start()
  await new Promise(resolve => setTimeout(resolve, 300))
  p2pcf.destroy()
  assert.ok(polls >= 3, `polling went on after the hung request (${polls} polls)`)
  assert.match(errors[0]?.name ?? '', /TimeoutError|AbortError/)
})

test('re-probing: a failed probe is an error event and re-probing goes on; an unpinned fingerprint change is no change', async t => {
  const { p2pcf } = scripted(() => ({ ps: [], pk: [] }), { networkChangePollIntervalMs: 20, slowPollingRateMs: 1e6 })
  const errors = []
  p2pcf.on('error', err => errors.push(err.message))
  let probes = 0
  await p2pcf.start()
  p2pcf._probe = async () => {
    probes++
    if (probes === 1) throw new Error('probe failed')
    return { ...NETWORK, fingerprint: `fp-${probes}` } // Node: a new fingerprint every time
  }
  const unhandled = []
  const onUnhandled = reason => unhandled.push(reason)
  process.on('unhandledRejection', onUnhandled)
  await new Promise(resolve => setTimeout(resolve, 50)) // the first publish happens meanwhile
  const stamp = p2pcf._dataTimestamp
  await new Promise(resolve => setTimeout(resolve, 150))
  process.off('unhandledRejection', onUnhandled)
  p2pcf.destroy()
  assert.deepEqual(unhandled, [])
  assert.deepEqual(errors, ['probe failed'])
  assert.ok(probes >= 4, `re-probing went on (${probes} probes)`)
  assert.equal(p2pcf._dataTimestamp, stamp, 'no republish for a fingerprint that is per connection anyway')
})

test('without WebRTC (Node with no rtc option), start() says what to pass', async () => {
  const p2pcf = new P2PCF('client-1', 'room-1', { fetch: async () => { throw new Error('no request expected') } })
  await assert.rejects(p2pcf.start(), /pass options\.rtc \(in Node: rtc: require\('@roamhq\/wrtc'\)\)/)
})

test('a page restored from the back-forward cache rejoins as a new session instead of staying dead', async t => {
  const listeners = {}
  globalThis.addEventListener = (type, fn) => { listeners[type] = fn }
  globalThis.removeEventListener = (type, fn) => { if (listeners[type] === fn) delete listeners[type] }
  t.after(() => { delete globalThis.addEventListener; delete globalThis.removeEventListener })
  const { p2pcf, requests } = scripted(body => body.dk ? {} : { ps: [], pk: [], dk: `key-of-${body.d?.[0]}` })
  await p2pcf.start()
  await new Promise(resolve => setTimeout(resolve, 20))
  const first = p2pcf.sessionId
  listeners.pagehide({ persisted: true }) // into the bfcache: leave the room
  assert.equal(p2pcf.destroyed, true)
  assert.equal(requests.filter(r => r.method === 'DELETE').length, 1)
  listeners.pageshow({ persisted: true }) // back: join again
  await new Promise(resolve => setTimeout(resolve, 20))
  assert.equal(p2pcf.destroyed, false)
  assert.notEqual(p2pcf.sessionId, first)
  const rejoined = requests.filter(r => r.body.d?.[0] === p2pcf.sessionId && r.body.p)
  assert.equal(rejoined.length, 1, 'the new session published itself')
  p2pcf.destroy()
  assert.deepEqual(Object.keys(listeners), [], 'destroy() by the user removes the page listeners')
})

test('back from the bfcache: a request of the old session that fails later starts no second poll loop', async t => {
  const listeners = {}
  globalThis.addEventListener = (type, fn) => { listeners[type] = fn }
  globalThis.removeEventListener = (type, fn) => { if (listeners[type] === fn) delete listeners[type] }
  t.after(() => { delete globalThis.addEventListener; delete globalThis.removeEventListener })
  let failHanging
  const { p2pcf, requests } = scripted(body => {
    if (body.dk) return {}
    if (body.d && !failHanging) return new Promise((resolve, reject) => { failHanging = () => reject(new Error('network gone')) })
    return { ps: [], pk: [], dk: 'key' }
  }, { fastPollingRateMs: 50, slowPollingRateMs: 50 })
  await p2pcf.start()
  await new Promise(resolve => setTimeout(resolve, 20)) // the publish hangs
  listeners.pagehide({ persisted: true })
  listeners.pageshow({ persisted: true })
  await new Promise(resolve => setTimeout(resolve, 20))
  failHanging() // the old session's request fails now
  const errors = []
  p2pcf.on('error', err => errors.push(err))
  const from = requests.length
  await new Promise(resolve => setTimeout(resolve, 520))
  const polls = requests.slice(from).filter(r => r.method === 'POST').length
  assert.ok(polls >= 7 && polls <= 12, `one loop polls every 50 ms: ${polls} polls in 520 ms`)
  assert.deepEqual(errors, [], 'the old session\'s failure is not the new session\'s error')
  p2pcf.destroy()
})

test('an app that calls destroy() in its own pagehide handler is not rejoined on pageshow', async t => {
  const listeners = {}
  globalThis.addEventListener = (type, fn) => { listeners[type] = fn }
  globalThis.removeEventListener = (type, fn) => { if (listeners[type] === fn) delete listeners[type] }
  t.after(() => { delete globalThis.addEventListener; delete globalThis.removeEventListener })
  const { p2pcf } = scripted(body => body.dk ? {} : { ps: [], pk: [], dk: 'key' })
  await p2pcf.start()
  await new Promise(resolve => setTimeout(resolve, 20))
  listeners.pagehide({ persisted: true }) // ours runs first
  p2pcf.destroy() // then the app's
  listeners.pageshow?.({ persisted: true })
  await new Promise(resolve => setTimeout(resolve, 20))
  assert.equal(p2pcf.destroyed, true)
  assert.deepEqual(Object.keys(listeners), [])
})

// Conformance: the same request transcripts against our worker and the reference
// (p2pcf@1.3.14's src/worker.js, served unchanged), comparing every status, body and CORS header.
// Random values (delete keys) are normalised. Deliberate differences are in docs/conformance.md and
// are not exercised here; tests/suites/bad-input.test.mjs covers where ours answers 4xx and the
// reference crashes.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { DTLS, makePeer, publishBody, pollBody, randomId, send, sleep } from '../lib/p2pcf.mjs'

const OURS = process.env.OURS_URL
const REFERENCE = process.env.REFERENCE_URL
const OURS_QUOTA = process.env.OURS_QUOTA_URL
const REFERENCE_QUOTA = process.env.REFERENCE_QUOTA_URL

const COMPARED_HEADERS = ['content-type', 'access-control-allow-origin', 'access-control-allow-methods',
  'access-control-max-age', 'access-control-allow-headers', 'vary', 'allow']

// The reference writes in waitUntil, after answering: give its writes time to land before the next step.
const SETTLE_MS = 150

let casesHeld = 0

function normalise (answer, keys) {
  const headers = Object.fromEntries(COMPARED_HEADERS.map(h => [h, answer.headers.get(h)]))
  let body = answer.json ?? answer.text
  if (body && typeof body === 'object' && typeof body.dk === 'string') {
    if (!keys.has(body.dk)) keys.set(body.dk, `<dk${keys.size}>`)
    body = { ...body, dk: keys.get(body.dk) }
  }
  return { status: answer.status, headers, body }
}

/**
 * Run `steps` against both workers, then compare step by step. `setup(room)` fixes every id and
 * timestamp once, so both workers get identical requests; each step is a function of
 * { room, ...setup values, answers } (answers: this worker's earlier answers) returning
 * { method, headers, body }.
 */
async function transcript (name, steps, { setup = () => ({}), ours = OURS, reference = REFERENCE, compareBody = true } = {}) {
  await test(name, async () => {
    const room = randomId('room-')
    const fixed = { room, ...setup(room) }
    const run = async url => {
      const answers = []
      const keys = new Map()
      for (const make of steps) {
        const step = make({ ...fixed, answers })
        const answer = await send(url, step)
        answers.push(answer)
        await sleep(SETTLE_MS)
      }
      return answers.map(a => normalise(a, keys))
    }
    const [mine, theirs] = await Promise.all([run(ours), run(reference)])
    for (let i = 0; i < steps.length; i++) {
      const label = `${name}, step ${i + 1}`
      assert.equal(mine[i].status, theirs[i].status, `${label}: status`)
      assert.deepEqual(mine[i].headers, theirs[i].headers, `${label}: headers`)
      if (compareBody) assert.deepEqual(mine[i].body, theirs[i].body, `${label}: body`)
      casesHeld++
    }
  })
}

const json = body => ({ headers: { 'Content-Type': 'application/json ' }, body })
const T = () => Date.now()

// ---- routing, methods, CORS -------------------------------------------------------------------

await transcript('GET answers the HTML status page', [
  () => ({ method: 'GET', headers: {} })
], { compareBody: false })

await transcript('OPTIONS: a CORS preflight echoes the requested headers', [
  () => ({ method: 'OPTIONS', headers: { Origin: 'https://a.example', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type,x-worker-method' } }),
  () => ({ method: 'OPTIONS', headers: { Origin: 'https://a.example', 'Access-Control-Request-Method': 'POST' } }),
  () => ({ method: 'OPTIONS', headers: {} })
])

await transcript('content types and methods', [
  ({ room }) => ({ headers: { 'Content-Type': 'text/plain' }, body: JSON.stringify({ r: room }) }),
  ({ room }) => ({ headers: {}, body: JSON.stringify({ r: room }) }),
  ({ room }) => ({ headers: { 'Content-Type': 'application/json' }, body: { r: room } }),
  ({ room }) => ({ method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ r: room }) }),
  ({ room }) => ({ method: 'PATCH', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ r: room }) }),
  ({ room }) => ({ method: 'PUT', headers: { 'Content-Type': 'text/html' }, body: JSON.stringify({ r: room }) })
])

// ---- validation texts (every 400 the reference gives) ------------------------------------------

function withPeer (room, change) {
  const peer = makePeer(room, 1)
  const body = publishBody(peer)
  change(body)
  return json(body)
}

const badFields = {
  'room missing': b => { delete b.r },
  'room empty': b => { b.r = '' },
  'room too short': b => { b.r = 'abc' },
  'room too long': b => { b.r = 'r'.repeat(65) },
  'room with a space': b => { b.r = 'my room' },
  'room with a slash': b => { b.r = 'a/b/c/d' },
  'room null': b => { b.r = null },
  'room short array': b => { b.r = ['ab'] },
  'expiry missing': b => { delete b.x },
  'expiry zero': b => { b.x = 0 },
  'expiry a string': b => { b.x = '120000' },
  'expiry over a day': b => { b.x = 86400001 },
  'timestamp missing': b => { delete b.t },
  'timestamp a string': b => { b.t = String(T()) },
  'timestamp 11 minutes old': b => { b.t = T() - 11 * 60 * 1000 },
  'timestamp 11 minutes ahead': b => { b.t = T() + 11 * 60 * 1000 },
  'context missing': b => { delete b.k },
  'context too long': b => { b.k = 'k'.repeat(65) },
  'data of 5': b => { b.d = b.d.slice(0, 5) },
  'data of 7': b => { b.d = [...b.d, 1] },
  'session missing': b => { b.d[0] = '' },
  'session too long': b => { b.d[0] = 's'.repeat(65) },
  'client missing': b => { b.d[1] = null },
  'client too long': b => { b.d[1] = 'c'.repeat(65) },
  'symmetric a string': b => { b.d[2] = 'false' },
  'symmetric a number': b => { b.d[2] = 0 },
  'dtls too short': b => { b.d[3] = DTLS.slice(1) },
  'dtls missing': b => { b.d[3] = null },
  'dtls not base64': b => { b.d[3] = '!'.repeat(44) },
  'joined-at zero': b => { b.d[4] = 0 },
  'joined-at a string': b => { b.d[4] = 'today' },
  'reflexive IPs a string': b => { b.d[5] = '1.2.3.4' },
  'reflexive IPs missing': b => { b.d[5] = null },
  'reflexive IPs with a word': b => { b.d[5] = ['1.2.3.4', 'localhost'] }
}

await transcript('every reference validation error, same status, text and headers',
  Object.values(badFields).map(change => ({ bodies }) => bodies.get(change)),
  { setup: room => ({ bodies: new Map(Object.values(badFields).map(change => [change, withPeer(room, change)])) }) })

// ---- the protocol: join, discover, exchange packages, heartbeat, leave ------------------------

/** Two peers a and b with fixed ids and timestamps, and a's reloaded self a2 (same context). */
function twoPeers (room) {
  const now = T()
  const a = { ...makePeer(room, 1), joinedAt: now - 10 }
  const b = { ...makePeer(room, 2), joinedAt: now - 5 }
  const a2 = { ...a, session: randomId('sess-reloaded-') }
  return { a, b, a2, now }
}
const leave = body => ({ headers: { 'Content-Type': 'application/json ', 'X-Worker-Method': 'DELETE' }, body })

await transcript('two peers meet, exchange packages and leave', [
  ({ room, a }) => json({ r: room, k: a.context }), // first read-only poll
  ({ a, now }) => json(publishBody(a, { t: now })), // publish, empty packages
  ({ room, b }) => json({ r: room, k: b.context }), // b's first poll sees a
  ({ a, b, now }) => json(publishBody(b, { t: now, packages: [[a.session, b.session, null, null, null, 'ufragB', 'pwdB', now, ['candidate:1 1 udp 1 1.2.3.4 5 typ host']]] })),
  ({ a, now }) => json(pollBody(a, { t: now })), // a: identified poll, no publish, gets b's package
  ({ a, b, now }) => json(publishBody(a, { t: now + 1, packages: [[b.session, a.session, 'ufragA', 'pwdA', DTLS, null, null, now, []]] })),
  ({ b, now }) => json(pollBody(b, { t: now })), // b gets a's package
  ({ a, now }) => json(publishBody(a, { t: now + 1, packages: [] })), // same timestamp: not written again
  ({ b, now }) => json(pollBody(b, { t: now })), // so b still sees a's package
  ({ room }) => json({ r: room }), // an observer without k sees both
  ({ a, now }) => json({ ...pollBody(a, { t: now }), dk: 'not-the-key' }), // not a leave: a poll
  ({ a, now }) => leave({ ...pollBody(a, { t: now + 2 }), dk: 'not-the-key' }), // wrong key
  ({ a, now }) => leave(pollBody(a, { t: now + 2 })), // no key
  ({ a, now, answers }) => leave({ ...pollBody(a, { t: now + 2 }), dk: answers[5].json.dk }),
  ({ b, now }) => json(pollBody(b, { t: now })), // a is gone
  ({ b, now, answers }) => ({ method: 'DELETE', headers: { 'Content-Type': 'application/json' }, body: { ...pollBody(b, { t: now + 2 }), dk: answers[3].json.dk } }),
  ({ room }) => json({ r: room }) // empty room
], { setup: twoPeers })

await transcript('a heartbeat with a new timestamp updates the row in place', [
  ({ a, now }) => json(publishBody(a, { t: now })),
  ({ b, now }) => json(publishBody(b, { t: now })),
  ({ a, now }) => json(publishBody(a, { t: now + 5 })),
  ({ room }) => json({ r: room }),
  ({ b, now }) => json(pollBody(b, { t: now }))
], { setup: twoPeers })

await transcript('a reload: same context, new session, replaces the row', [
  ({ a, now }) => json(publishBody(a, { t: now })),
  ({ b, now }) => json(publishBody(b, { t: now })),
  ({ a2, now }) => json(publishBody(a2, { t: now + 1 })),
  ({ b, now }) => json(pollBody(b, { t: now }))
], { setup: twoPeers })

await transcript('rooms are separate', [
  ({ a, now }) => json(publishBody(a, { t: now })),
  ({ room }) => json({ r: room + '-other' })
], { setup: twoPeers })

// ---- quotas (both workers run with ALLOWED_ORIGINS=https://allowed.example, ORIGIN_QUOTA=3) ----

await transcript('allowed origins pass, others are metered then refused', [
  ({ room }) => ({ ...json({ r: room }), headers: { 'Content-Type': 'application/json', Origin: 'https://allowed.example' } }),
  () => ({ method: 'GET', headers: { Origin: 'https://allowed.example' } }),
  ({ room }) => ({ ...json({ r: room }), headers: { 'Content-Type': 'application/json' } })
], { ours: OURS_QUOTA, reference: REFERENCE_QUOTA, compareBody: false })

await test('a metered origin gets exactly its quota, then 429 (ours and reference)', async () => {
  const origin = `https://${randomId()}.example`
  const statuses = async url => {
    const out = []
    for (let i = 0; i < 5; i++) out.push((await send(url, { method: 'GET', headers: { Origin: origin } })).status)
    return out
  }
  // The reference only writes its counter with probability 1/100, so it is not expected to stop
  // at 3; ours counts exactly, and both answer 429 with the same text and headers once over.
  const mine = await statuses(OURS_QUOTA)
  assert.deepEqual(mine, [200, 200, 200, 429, 429])
  const over = await send(OURS_QUOTA, { method: 'GET', headers: { Origin: origin } })
  assert.equal(over.text, 'Over quota')
  assert.equal(over.headers.get('access-control-allow-origin'), null)
  casesHeld++
})

test('report', () => {
  console.log(`conformance: ${casesHeld} request/response pairs identical to the reference`)
  assert.ok(casesHeld > 60)
})

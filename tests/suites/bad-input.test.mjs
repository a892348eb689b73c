// Bad input against our worker: every malformed request gets a 4xx with a one-line message, costs
// no write, and leaves the room exactly as it was. (Where the reference answers 400 the texts are
// checked against it in conformance.test.mjs; here are the cases where it crashes with a 500 or
// stores garbage.)
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { DTLS, makePeer, publishBody, pollBody, randomId, send } from '../lib/p2pcf.mjs'

const OURS = process.env.OURS_URL
const MAX_BODY_BYTES = 256 * 1024

function assertClearRefusal (answer, label, status = 400) {
  assert.equal(answer.status, status, `${label}: status (${answer.text})`)
  assert.ok(answer.text.length > 0 && answer.text.length < 200, `${label}: a short message, got ${JSON.stringify(answer.text)}`)
  assert.ok(!answer.text.includes('\n'), `${label}: one line`)
  assert.ok(!/error:|at .*\(|stack/i.test(answer.text), `${label}: no stack trace`)
  assert.equal(answer.ops.put, 0, `${label}: nothing written`)
}

/** A room with one peer in it, and a way to check it is unchanged. */
async function roomWithOnePeer () {
  const room = randomId('room-')
  const peer = makePeer(room, 1)
  const joined = await send(OURS, { body: publishBody(peer) })
  assert.equal(joined.status, 200)
  const snapshot = async () => (await send(OURS, { body: { r: room } })).json
  const before = await snapshot()
  return { room, peer, assertUnchanged: async label => assert.deepEqual(await snapshot(), before, `${label}: room unchanged`) }
}

test('bodies that are not a JSON object', async () => {
  const { room, assertUnchanged } = await roomWithOnePeer()
  const bodies = ['', 'not json', '{"r":', 'null', 'true', '42', '"room"', '[]', `[{"r":"${room}"}]`, '\u0000\u0001', '{"r":"' + room + '"}garbage']
  for (const body of bodies) {
    assertClearRefusal(await send(OURS, { body }), JSON.stringify(body))
  }
  await assertUnchanged('non-objects')
})

test('room ids of the wrong type or shape', async () => {
  const odd = [12345, 1234.5, true, {}, { r: 'abcd' }, ['abcdef', 'ghijkl'], 'é'.repeat(4), 'room/../x', 'room%2Fx', 'room\nid', ' room', 'room ', '\u{1F600}\u{1F600}', 'r'.repeat(1000)]
  for (const r of odd) {
    const answer = await send(OURS, { body: { r } })
    assertClearRefusal(answer, `r = ${JSON.stringify(r)}`)
    assert.ok(answer.text.startsWith('Bad room id'), answer.text)
  }
})

test('every identity field wrong in ways the reference does not check', async () => {
  const { room, peer, assertUnchanged } = await roomWithOnePeer()
  const cases = {
    'x negative': b => { b.x = -1 },
    'x NaN-like': b => { b.x = 'NaN' },
    't as object': b => { b.t = { now: true } },
    'k a number': b => { b.k = 42 },
    'k an array': b => { b.k = ['ctx'] },
    'd a string of six': b => { b.d = 'abcdef' },
    'd an object': b => { b.d = { 0: 'a' } },
    'session a number': b => { b.d[0] = 12345 },
    'session an array': b => { b.d[0] = ['s'] },
    'client a number': b => { b.d[1] = 7 },
    'dtls of 44 decoding to 33 bytes': b => { b.d[3] = 'A'.repeat(44) },
    'dtls with spaces': b => { b.d[3] = ' '.repeat(44) },
    'joined-at Infinity-ish': b => { b.d[4] = '1e999' },
    'IP a number': b => { b.d[5] = [1234] },
    'IP null': b => { b.d[5] = [null] },
    'IP out of range': b => { b.d[5] = ['256.1.1.1'] },
    'IP with a zone': b => { b.d[5] = ['fe80::1%eth0'] },
    'IP with text around': b => { b.d[5] = ['x::1y'] },
    'reflexive IPs an object': b => { b.d[5] = { ip: '1.2.3.4' } },
    'packages a string': b => { b.p = 'hello' },
    'packages an object': b => { b.p = { 0: [] } },
    'package a number': b => { b.p = [5] },
    'package empty': b => { b.p = [[]] },
    'package without a target': b => { b.p = [[null, 'x']] },
    'package target a number': b => { b.p = [[42, 'x']] },
    'package target too long': b => { b.p = [['s'.repeat(65), 'x']] },
    'delete key a number': b => { b.dk = 5 },
    'delete key too long': b => { b.dk = 'k'.repeat(65) }
  }
  for (const [label, change] of Object.entries(cases)) {
    const body = publishBody(makePeer(room, 2))
    change(body)
    assertClearRefusal(await send(OURS, { body }), label)
  }
  await assertUnchanged('identity fields')
  // and the peer already there is untouched by a bad republish of its own context
  const bad = publishBody(peer, { t: Date.now() + 1 })
  bad.p = 'not packages'
  assertClearRefusal(await send(OURS, { body: bad }), 'own context, bad packages')
  await assertUnchanged('own context')
})

test('oversized bodies are refused with 413, whether declared or streamed', async () => {
  const { room, assertUnchanged } = await roomWithOnePeer()
  const body = publishBody(makePeer(room, 3), { packages: [['sess-x', 'y'.repeat(MAX_BODY_BYTES)]] })
  assertClearRefusal(await send(OURS, { body }), 'declared length', 413)
  // without Content-Length (chunked)
  const text = JSON.stringify(body)
  const stream = new ReadableStream({ start (c) { c.enqueue(new TextEncoder().encode(text)); c.close() } })
  const res = await fetch(OURS, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: stream, duplex: 'half' })
  assert.equal(res.status, 413)
  await assertUnchanged('oversized')
})

test('the largest legitimate publish fits: a newcomer in a 100-peer room', async () => {
  const room = randomId('room-')
  const newcomer = makePeer(room, 0)
  const candidate = 'candidate:842163049 1 udp 1677729535 203.0.113.77 54321 typ srflx raddr 0.0.0.0 rport 0 generation 0 ufrag abcd network-cost 999'
  const packages = Array.from({ length: 99 }, (_, i) => [`sess-${i}-${'x'.repeat(20)}`, newcomer.session, 'ufragufragufrag', 'p'.repeat(32), DTLS, null, null, Date.now(), Array(10).fill(candidate)])
  const body = publishBody(newcomer, { packages })
  const size = JSON.stringify(body).length
  const answer = await send(OURS, { body })
  assert.equal(answer.status, 200, `a ${size}-byte publish is accepted`)
  assert.ok(size < MAX_BODY_BYTES)
})

test('leave requests that are wrong', async () => {
  const { room, peer, assertUnchanged } = await roomWithOnePeer()
  const leave = body => send(OURS, { headers: { 'Content-Type': 'application/json', 'X-Worker-Method': 'DELETE' }, body })
  assertClearRefusal(await leave({ r: room, k: peer.context }), 'no delete key')
  assertClearRefusal(await leave({ ...pollBody(peer), dk: 'guess' }), 'wrong key', 404)
  assertClearRefusal(await leave({ r: room, dk: 'guess' }), 'no context', 404)
  assertClearRefusal(await leave('not json'), 'not json')
  await assertUnchanged('leaves')
})

// WebSocket signalling against our running worker: the three protocols (P2PCF-WS rooms, the
// relay, topic pub/sub), their bad input, and a 100-socket room.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { openSocket } from '../lib/sockets.mjs'
import { randomId } from '../lib/p2pcf.mjs'

const OURS = process.env.OURS_URL
const open = []
after(() => { for (const s of open) s.ws.terminate() })

async function connect (path) {
  const socket = await openSocket(OURS, path)
  open.push(socket)
  return socket
}

const ofType = type => frame => frame.type === type
const roomPath = (room, id) => `/ws/room/${encodeURIComponent(room)}?clientId=${encodeURIComponent(id)}`

/** Join `ids` to a fresh room one by one, each after the previous one's peers frame. */
async function room (ids, name = randomId('ws-')) {
  const sockets = []
  for (const id of ids) {
    const socket = await connect(roomPath(name, id))
    await socket.next(ofType('peers'))
    sockets.push(socket)
  }
  return { name, sockets }
}

/** Resolves to how many frames arrive within `ms` (to check that nothing does). */
async function quiet (socket, ms = 300) {
  await new Promise(resolve => setTimeout(resolve, ms))
  return socket.frames.length
}

test('health, the JSON description at /, and requests that cannot open a socket', async () => {
  const health = await fetch(`${OURS}/health`)
  assert.equal(health.status, 200)
  assert.equal(await health.text(), 'OK')
  const description = await (await fetch(`${OURS}/`, { headers: { Accept: 'application/json' } })).json()
  assert.equal(description.websocket.pubsub, '/pubsub/:namespace')
  assert.match(await (await fetch(`${OURS}/`)).text(), /^<!doctype html>/, 'browsers still get the status page')

  const plain = await fetch(`${OURS}/ws/room/abcd?clientId=me`)
  assert.equal(plain.status, 426)
  assert.match(await plain.text(), /WebSocket upgrade/)
  for (const path of ['/ws/room/abcd', '/ws/room/abcd?clientId=', `/relay/${'n'.repeat(129)}`, '/ws/room/a%ZZ?clientId=x', '/pubsub/']) {
    await assert.rejects(openSocket(OURS, path), err => err.status === 400, path)
  }
})

test('P2PCF-WS: joins and leaves are seen by all, with the peer list on connect', async () => {
  const name = randomId('ws-')
  const anna = await connect(roomPath(name, 'anna'))
  assert.deepEqual(await anna.next(ofType('peers')), { type: 'peers', peers: [], yourId: 'anna' })
  const bert = await connect(roomPath(name, 'bert'))
  assert.deepEqual(await bert.next(ofType('peers')), { type: 'peers', peers: ['anna'], yourId: 'bert' })
  const joined = await anna.next(ofType('peer_join'))
  assert.equal(joined.clientId, 'bert')
  assert.ok(Math.abs(joined.timestamp - Date.now()) < 10_000)
  const cleo = await connect(roomPath(name, 'cleo'))
  assert.deepEqual((await cleo.next(ofType('peers'))).peers, ['anna', 'bert'])
  for (const s of [anna, bert]) assert.equal((await s.next(ofType('peer_join'))).clientId, 'cleo')

  await bert.close(1000)
  for (const s of [anna, cleo]) assert.equal((await s.next(ofType('peer_leave'))).clientId, 'bert')
  const dora = await connect(roomPath(name, 'dora'))
  assert.deepEqual((await dora.next(ofType('peers'))).peers, ['anna', 'cleo'])
})

test('P2PCF-WS: signals reach their target only; broadcasts everyone else', async () => {
  const { sockets: [anna, bert, cleo] } = await room(['anna', 'bert', 'cleo'])
  await anna.next(ofType('peer_join')); await anna.next(ofType('peer_join')); await bert.next(ofType('peer_join'))
  anna.send({ type: 'signal', targetId: 'cleo', signal: { sdp: 'v=0' } })
  assert.deepEqual(await cleo.next(ofType('signal')), { type: 'signal', fromId: 'anna', signal: { sdp: 'v=0' } })
  assert.equal(await quiet(bert), 0, 'bert got nothing')

  cleo.send({ type: 'broadcast', data: { hello: 1 } })
  for (const s of [anna, bert]) assert.deepEqual(await s.next(ofType('broadcast')), { type: 'broadcast', fromId: 'cleo', data: { hello: 1 } })
  assert.equal(await quiet(cleo), 0, 'the sender does not hear its own broadcast')
})

test('P2PCF-WS: a second socket with the same client id replaces the first (4000)', async () => {
  const { name, sockets: [anna, bert] } = await room(['anna', 'bert'])
  await anna.next(ofType('peer_join'))
  const again = await connect(roomPath(name, 'anna'))
  assert.deepEqual(await again.next(ofType('peers')), { type: 'peers', peers: ['bert'], yourId: 'anna' })
  assert.equal((await anna.closed).code, 4000)
  assert.equal(await quiet(bert), 0, 'bert saw neither a leave nor a join')
  bert.send({ type: 'signal', targetId: 'anna', signal: 1 })
  assert.equal((await again.next(ofType('signal'))).fromId, 'bert')
})

test('P2PCF-WS: an id that connected with a key is not taken over without it (409)', async () => {
  const name = randomId('ws-')
  const owner = await connect(`${roomPath(name, 'anna')}&key=s3cret`)
  await owner.next(ofType('peers'))
  await assert.rejects(openSocket(OURS, roomPath(name, 'anna')), err => err.status === 409 && /in use/.test(err.body))
  await assert.rejects(openSocket(OURS, `${roomPath(name, 'anna')}&key=guess`), err => err.status === 409)
  const again = await connect(`${roomPath(name, 'anna')}&key=s3cret`)
  await again.next(ofType('peers'))
  assert.equal((await owner.closed).code, 4000, 'the owner itself, reconnecting, still replaces')
})

test('P2PCF-WS: bad frames get an error frame and the socket stays open', async () => {
  const { sockets: [anna] } = await room(['anna'])
  const bad = [
    ['not json', /Expected JSON/],
    ['[1,2]', /JSON object/],
    ['{"no":"type"}', /Missing "type"/],
    ['{"type":"dance"}', /Unknown type/],
    ['{"type":"signal","signal":1}', /Missing "targetId"/],
    ['{"type":"signal","targetId":"nobody","signal":1}', /Peer not in the room: nobody/],
    [JSON.stringify({ type: 'broadcast', data: 'x'.repeat(70 * 1024) }), /Frame too large/]
  ]
  for (const [frame, expected] of bad) {
    anna.send(frame)
    assert.match((await anna.next(ofType('error'))).error, expected)
  }
  anna.ws.send(Buffer.from([1, 2, 3]))
  assert.match((await anna.next(ofType('error'))).error, /Binary/)
  anna.send('ping')
  assert.deepEqual(await anna.next(f => f.text === 'pong'), { text: 'pong' }, 'ping is answered with pong')
  assert.equal(anna.ws.readyState, anna.ws.OPEN)
})

test('close codes that may not be sent are never echoed', async () => {
  const { sockets: [anna, bert] } = await room(['anna', 'bert'])
  anna.ws.close() // no code: the server receives 1005
  assert.equal((await anna.closed).code, 1000, 'answered with a normal close, not 1005')
  assert.equal((await bert.next(ofType('peer_leave'))).clientId, 'anna')
  bert.ws.terminate() // no close frame at all: 1006 on the server side
  const { sockets: [cleo] } = await room(['cleo'])
  assert.equal(cleo.ws.readyState, cleo.ws.OPEN, 'the worker keeps serving')
})

test('a flood is rate limited with an error frame, and the socket recovers', async () => {
  const { sockets: [anna, bert] } = await room(['anna', 'bert'])
  await anna.next(ofType('peer_join'))
  for (let i = 0; i < 260; i++) anna.send({ type: 'signal', targetId: 'bert', signal: i })
  assert.match((await anna.next(ofType('error'), 10_000)).error, /Rate limited/)
  await new Promise(resolve => setTimeout(resolve, 1500))
  bert.frames.length = 0
  anna.send({ type: 'signal', targetId: 'bert', signal: 'after' })
  assert.equal((await bert.next(f => f.signal === 'after')).fromId, 'anna')
})

test('relay: register, list_peers, relay to the right socket only, and re-register after a reconnect', async () => {
  const ns = `/relay/${randomId('ns-')}`
  const [alice, bob, carol] = await Promise.all([connect(ns), connect(ns), connect(ns)])
  alice.send({ type: 'relay', to: 'bob', data: 1 })
  assert.match((await alice.next(ofType('error'))).error, /Register first/)
  for (const [socket, id] of [[alice, 'alice'], [bob, 'bob'], [carol, 'carol']]) {
    socket.send({ type: 'register', peer_id: id })
    assert.deepEqual(await socket.next(ofType('registered')), { type: 'registered', peer_id: id })
  }
  alice.send({ type: 'list_peers' })
  assert.deepEqual((await alice.next(ofType('peers'))).peers.sort(), ['bob', 'carol'])
  alice.send({ type: 'relay', to: 'bob', data: { offer: 'x' } })
  assert.deepEqual(await bob.next(ofType('relay')), { type: 'relay', from: 'alice', data: { offer: 'x' } })
  assert.equal(await quiet(carol), 0)
  alice.send({ type: 'relay', to: 'dave', data: 1 })
  assert.match((await alice.next(ofType('error'))).error, /Peer not found: dave/)

  const bobAgain = await connect(ns)
  bobAgain.send({ type: 'register', peer_id: 'bob' })
  await bobAgain.next(ofType('registered'))
  assert.equal((await bob.closed).code, 4000)
  alice.send({ type: 'relay', to: 'bob', data: 2 })
  assert.equal((await bobAgain.next(ofType('relay'))).data, 2)

  const bare = await connect('/relay')
  bare.send({ type: 'list_peers' })
  assert.ok(Array.isArray((await bare.next(ofType('peers'))).peers), 'bare /relay is a namespace too')
})

test('pub/sub: subscribers of a topic get its publishes; topics and namespaces are isolated', async () => {
  const one = `/pubsub/${randomId('ns-')}`
  const two = `/pubsub/${randomId('ns-')}`
  const [a, b, c, d] = await Promise.all([connect(one), connect(one), connect(one), connect(two)])
  a.send({ type: 'subscribe', topic: 'news' })
  b.send({ type: 'subscribe', topic: 'news' })
  c.send({ type: 'subscribe', topic: 'sport' })
  d.send({ type: 'subscribe', topic: 'news' })
  await new Promise(resolve => setTimeout(resolve, 200))
  c.send({ type: 'publish', topic: 'news', payload: { n: 1 } })
  for (const s of [a, b]) assert.deepEqual(await s.next(), { topic: 'news', payload: { n: 1 } })
  assert.equal(await quiet(c), 0, 'another topic hears nothing')
  assert.equal(await quiet(d, 0), 0, 'another namespace hears nothing')
  b.send({ type: 'unsubscribe', topic: 'news' })
  await new Promise(resolve => setTimeout(resolve, 200))
  c.send({ type: 'publish', topic: 'news', payload: 2 })
  assert.equal((await a.next()).payload, 2)
  assert.equal(await quiet(b), 0, 'unsubscribed')
  a.send({ type: 'subscribe', topic: '' })
  assert.match((await a.next(ofType('error'))).error, /A topic is/)
})

test('100 sockets in one room: everyone sees everyone, and signals arrive', async () => {
  const name = randomId('ws100-')
  const ids = Array.from({ length: 100 }, (_, i) => `peer-${String(i).padStart(3, '0')}`)
  const sockets = []
  for (let i = 0; i < ids.length; i += 10) {
    sockets.push(...await Promise.all(ids.slice(i, i + 10).map(id => connect(roomPath(name, id)))))
  }
  const last = await connect(roomPath(name, 'late'))
  assert.equal((await last.next(ofType('peers'))).peers.length, 100)
  for (const s of sockets) {
    const joins = new Set()
    while (!joins.has('late')) joins.add((await s.next(ofType('peer_join'), 20_000)).clientId)
  }
  const latencies = []
  for (let i = 0; i < 100; i++) {
    const from = sockets[i]
    const to = sockets[(i + 37) % 100]
    const sentAt = performance.now()
    from.send({ type: 'signal', targetId: ids[(i + 37) % 100], signal: { i } })
    await to.next(f => f.type === 'signal' && f.signal.i === i)
    latencies.push(performance.now() - sentAt)
  }
  latencies.sort((x, y) => x - y)
  console.log(`websocket: signal relay in a 101-socket room, p50 ${latencies[50].toFixed(1)} ms, p99 ${latencies[98].toFixed(1)} ms (sequential, unloaded)`)
})

// Join storms against the running workers: many peers publish into a fresh room at the same
// moment, then an observer counts who made it. Ours must lose none; the reference's losses are
// reported for comparison (it picks the same slot for simultaneous writers).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { makePeer, publishBody, pollBody, randomId, send, sleep } from '../lib/p2pcf.mjs'

const OURS = process.env.OURS_URL
const REFERENCE = process.env.REFERENCE_URL

/** `peers` publish at once into a fresh room; returns how many an observer then sees. */
async function storm (url, peers) {
  const room = randomId('storm-')
  const joiners = Array.from({ length: peers }, (_, n) => makePeer(room, n))
  const answers = await Promise.all(joiners.map(peer => send(url, { body: publishBody(peer) })))
  await sleep(300) // the reference writes after answering
  const seen = await send(url, { body: { r: room } })
  return { statuses: answers.map(a => a.status), seen: seen.json.ps.length, answers }
}

test('20-peer join storms: ours loses none (5 rounds), reference measured', async () => {
  let oursLost = 0
  let referenceLost = 0
  let slowest = 0
  for (let round = 0; round < 5; round++) {
    const started = Date.now()
    const mine = await storm(OURS, 20)
    slowest = Math.max(slowest, Date.now() - started)
    assert.deepEqual(mine.statuses, Array(20).fill(200), 'every join answered 200')
    oursLost += 20 - mine.seen
    referenceLost += 20 - (await storm(REFERENCE, 20)).seen
  }
  console.log(`join storm, 20 peers x 5 rounds: lost ${oursLost}/100 (ours), ${referenceLost}/100 (reference); slowest round ${slowest} ms`)
  assert.equal(oursLost, 0)
  // the index takes one write a second: the 19 that wait are folded together, not one by one
  assert.ok(slowest < 5000, `a storm took ${slowest} ms`)
})

test('a 50-peer storm with heartbeats and leaves mixed in converges to the right room', async () => {
  const room = randomId('churn-')
  const peers = Array.from({ length: 50 }, (_, n) => makePeer(room, n))
  const keys = await Promise.all(peers.slice(0, 25).map(async p => (await send(OURS, { body: publishBody(p) })).json.dk))
  // at once: 25 newcomers join, 10 of the first 25 heartbeat, 10 others leave
  const t = Date.now() + 1
  await Promise.all([
    ...peers.slice(25).map(p => send(OURS, { body: publishBody(p) })),
    ...peers.slice(0, 10).map(p => send(OURS, { body: publishBody(p, { t }) })),
    ...peers.slice(10, 20).map((p, i) => send(OURS, { headers: { 'Content-Type': 'application/json', 'X-Worker-Method': 'DELETE' }, body: { ...pollBody(p), dk: keys[10 + i] } }))
  ]).then(answers => assert.ok(answers.every(a => a.status === 200), answers.map(a => a.status).join(',')))
  const seen = (await send(OURS, { body: { r: room } })).json.ps.map(row => row[0]).sort()
  const expected = [...peers.slice(0, 10), ...peers.slice(20)].map(p => p.session).sort()
  assert.deepEqual(seen, expected)
})

test('a steady poll reads one object and writes nothing, at 1 and at 50 peers', async () => {
  for (const size of [1, 50]) {
    const room = randomId('cost-')
    const peers = Array.from({ length: size }, (_, n) => makePeer(room, n))
    await Promise.all(peers.map(p => send(OURS, { body: publishBody(p) })))
    const answer = await send(OURS, { body: pollBody(peers[0]) })
    assert.equal(answer.json.ps.length, size - 1)
    assert.deepEqual(answer.ops, { get: 1, put: 0, delete: 0, list: 0 }, `steady poll at ${size} peers`)
    const times = []
    for (let i = 0; i < 30; i++) times.push((await send(OURS, { body: pollBody(peers[0]) })).ms)
    const p50 = times.sort((x, y) => x - y)[15]
    console.log(`steady poll at ${size} peers: ${answer.ops.get} R2 read(s), ${answer.ops.put} writes, unloaded p50 ${p50.toFixed(1)} ms`)
  }
})

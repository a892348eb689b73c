// A short smoke run of the bench's client simulator against our worker, so `make bench` cannot rot
// unnoticed: 4 simulated p2pcf clients for a few seconds (20x compressed time), exchanging
// handshake packages; every answer must be 200 and the room must list all of them.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { SimPeer, Tally, seeded } from '../bench/simulator.mjs'
import { randomId, send } from '../lib/p2pcf.mjs'

const OURS = process.env.OURS_URL

test('bench simulator smoke run: 4 clients, no errors, everyone listed, packages delivered', async () => {
  const room = randomId('smoke-')
  const tally = new Tally()
  const rng = seeded(7)
  const peers = Array.from({ length: 4 }, (_, id) => new SimPeer({ url: OURS, room, id, compression: 20, tally, rng }))
  const end = Date.now() + 4000
  let listed = []
  const runs = peers.map(async (peer, i) => {
    await new Promise(resolve => setTimeout(resolve, i * 200))
    peer.joinedAt = Date.now()
    await peer.run(end)
  })
  await new Promise(resolve => setTimeout(resolve, 3500))
  listed = (await send(OURS, { body: { r: room } })).json.ps.map(row => row[0])
  await Promise.all(runs)
  assert.equal(tally.errors, 0)
  assert.deepEqual(listed.sort(), peers.map(p => p.session).sort())
  // every pair completed the package exchange: each peer answered or was answered by every other
  for (const peer of peers) assert.equal(peer.knownPeers.size, 3, `${peer.session} exchanged packages with all`)
  assert.ok(tally.ops.get > 0 && tally.ops.put > 0, 'operations were counted from Server-Timing')
  assert.equal(tally.ops.list, 0)
})

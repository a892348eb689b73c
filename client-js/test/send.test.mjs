import { test } from 'node:test'
import assert from 'node:assert/strict'
import { P2PCF } from '../src/p2pcf.js'
import { Reassembler } from '../src/chunks.js'

/** A connected peer whose channel drains 1 MiB per 10 ms, recording what is sent. */
function fakePeer () {
  const peer = {
    id: 'fake',
    connected: true,
    bufferedAmount: 0,
    sent: [],
    send (part) { peer.sent.push(new Uint8Array(part.slice ? part.slice(0) : part)); peer.bufferedAmount += part.byteLength },
    drained () { return new Promise(resolve => setTimeout(() => { peer.bufferedAmount = 0; resolve() }, 10)) }
  }
  return peer
}

test('a small send after a large one arrives after it', async () => {
  const p2pcf = new P2PCF('sender', 'room-1')
  const peer = fakePeer()
  const big = new Uint8Array(3 * 1024 * 1024).fill(7)
  const first = p2pcf.send(peer, big)
  const second = p2pcf.send(peer, 'small')
  await Promise.all([first, second])
  const reassembler = new Reassembler(1 << 30)
  const messages = peer.sent.map(part => reassembler.push(part)).filter(Boolean).map(r => r.message)
  assert.equal(messages.length, 2)
  assert.equal(messages[0].byteLength, big.byteLength, 'the large message first')
  assert.equal(new TextDecoder().decode(messages[1]), 'small')
})

test('a send cut by a disconnect rejects; not awaiting it raises nothing', async () => {
  const p2pcf = new P2PCF('sender', 'room-1')
  const peer = fakePeer()
  const unhandled = []
  const onUnhandled = reason => unhandled.push(reason)
  process.on('unhandledRejection', onUnhandled)
  const sending = p2pcf.send(peer, new Uint8Array(5 * 1024 * 1024))
  setTimeout(() => { peer.connected = false }, 15)
  await assert.rejects(sending, /closed before the message was sent/)
  p2pcf.send(peer, new Uint8Array(1)) // not awaited, on a closed connection
  peer.connected = true
  const ignored = p2pcf.send(peer, new Uint8Array(5 * 1024 * 1024))
  setTimeout(() => { peer.connected = false }, 15)
  await new Promise(resolve => setTimeout(resolve, 100))
  process.off('unhandledRejection', onUnhandled)
  assert.deepEqual(unhandled, [])
  await assert.rejects(ignored)
})

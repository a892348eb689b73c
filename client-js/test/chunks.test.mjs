import { test } from 'node:test'
import assert from 'node:assert/strict'
import { CHUNK_MAGIC, CHUNK_PAYLOAD_BYTES, MAX_MESSAGE_BYTES, Reassembler, chunk, needsChunking, readSignal, withSignalHeader } from '../src/chunks.js'

const bytes = (n, seed = 1) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed * 7) & 0xff)

function roundTrip (message, id = 7) {
  const reassembler = new Reassembler(1 << 30)
  let out = null
  for (const part of chunk(message, id)) {
    const result = reassembler.push(part)
    if (result) out = result.message
  }
  return out
}

test('messages of every size boundary round-trip byte-exact', () => {
  for (const n of [0, 1, MAX_MESSAGE_BYTES + 1, CHUNK_PAYLOAD_BYTES, CHUNK_PAYLOAD_BYTES + 1, 3 * CHUNK_PAYLOAD_BYTES, 100_000, 1_000_003]) {
    assert.deepEqual(roundTrip(bytes(n)), bytes(n), `${n} bytes`)
  }
})

test('the chunk header is the p2pcf 1.3.14 layout', () => {
  const [first, second] = [...chunk(bytes(20_000), 513)]
  const view = new DataView(first)
  assert.deepEqual([view.getUint16(0, true), view.getUint16(2, true), view.getUint16(4, true), view.getUint16(6, true), view.getUint32(8, true)], [CHUNK_MAGIC, 513, 0, 0, 20_000])
  assert.equal(first.byteLength, MAX_MESSAGE_BYTES)
  assert.equal(new DataView(second).getUint16(6, true), 1, 'last flag')
  assert.equal(second.byteLength % 4, 0, 'padded to 4 bytes')
})

test('a short message that starts with the magic word is chunked, and survives', () => {
  const tricky = new Uint8Array([CHUNK_MAGIC & 0xff, CHUNK_MAGIC >> 8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
  assert.ok(needsChunking(tricky), 'the original compared an array with a number here, so never chunked it')
  assert.deepEqual(roundTrip(tricky), tricky)
  assert.ok(!needsChunking(new Uint8Array([1, 2, 3])))
})

test('interleaved chunked messages do not mix', () => {
  const a = bytes(50_000, 1)
  const b = bytes(40_000, 2)
  const reassembler = new Reassembler(1 << 30)
  const [partsA, partsB] = [[...chunk(a, 1)], [...chunk(b, 2)]]
  const done = []
  for (let i = 0; i < Math.max(partsA.length, partsB.length); i++) {
    for (const part of [partsA[i], partsB[i]]) {
      if (!part) continue
      const result = reassembler.push(part)
      if (result) done.push(result.message)
    }
  }
  // b has fewer chunks, so it completes first; each comes out whole and unmixed
  assert.deepEqual(done, [b, a])
})

test('a declared length over the bound is refused without allocating it', () => {
  const reassembler = new Reassembler(1024)
  const hostile = new ArrayBuffer(16)
  const view = new DataView(hostile)
  view.setUint16(0, CHUNK_MAGIC, true)
  view.setUint32(8, 0xffffffff, true) // "4 GB"
  const result = reassembler.push(hostile)
  assert.ok(result.error instanceof RangeError)
  assert.match(result.error.message, /4294967295-byte/)
  assert.equal(reassembler.pending.size, 0)
})

/** A hand-made chunk: header fields as given, `payload` bytes after it. */
function rawChunk ({ id = 9, index = 0, last = 0, total, payload }) {
  const buffer = new ArrayBuffer(12 + payload)
  const view = new DataView(buffer)
  view.setUint16(0, CHUNK_MAGIC, true)
  view.setUint16(2, id, true)
  view.setUint16(4, index, true)
  view.setUint16(6, last, true)
  view.setUint32(8, total, true)
  return buffer
}

test('a chunk index past the declared total is an error result, not a throw', () => {
  const reassembler = new Reassembler(1 << 20)
  const result = reassembler.push(rawChunk({ index: 5, last: 1, total: 100, payload: 0 }))
  assert.ok(result.error instanceof RangeError, 'the original threw from Uint8Array.set here')
  assert.match(result.error.message, /malformed chunk 5/)
  assert.equal(reassembler.pending.size, 0)
})

test('a message with a missing chunk is never delivered (no zero-filled gaps)', () => {
  const message = bytes(3 * CHUNK_PAYLOAD_BYTES)
  const [first, , third] = [...chunk(message, 4)]
  const reassembler = new Reassembler(1 << 20)
  assert.equal(reassembler.push(first), null)
  const result = reassembler.push(third)
  assert.ok(result.error, 'the last chunk arrived with the second missing')
  assert.deepEqual(reassembler.pending.size, 0)
})

test('partial messages together stay under the bound, and idle ones expire', () => {
  let now = 0
  const reassembler = new Reassembler(100_000, () => now)
  for (let id = 0; id < 3; id++) {
    const result = reassembler.push(rawChunk({ id, total: 30_000, payload: CHUNK_PAYLOAD_BYTES }))
    assert.equal(result, null, `partial message ${id} accepted`)
  }
  const refused = reassembler.push(rawChunk({ id: 3, total: 30_000, payload: CHUNK_PAYLOAD_BYTES }))
  assert.match(refused.error.message, /90000 bytes already pending/, '40 partial 64 MiB messages once allocated 2.5 GiB')
  now += 61_000
  assert.equal(reassembler.push(rawChunk({ id: 3, total: 30_000, payload: CHUNK_PAYLOAD_BYTES })), null, 'the stale ones were dropped')
  assert.equal(reassembler.pendingBytes, 30_000)
})

test('duplicate chunks, wrong payload sizes and a moving total are refused', () => {
  const cases = [
    [[rawChunk({ total: 40_000, payload: CHUNK_PAYLOAD_BYTES }), rawChunk({ total: 40_000, payload: CHUNK_PAYLOAD_BYTES })], /malformed chunk 0/],
    [[rawChunk({ total: 40_000, payload: 10 })], /malformed chunk 0/],
    [[rawChunk({ total: 40_000, payload: CHUNK_PAYLOAD_BYTES }), rawChunk({ index: 1, total: 50_000, payload: CHUNK_PAYLOAD_BYTES })], /malformed chunk 1/],
    [[rawChunk({ total: 40_000, last: 1, payload: CHUNK_PAYLOAD_BYTES })], /malformed chunk 0/]
  ]
  for (const [parts, expected] of cases) {
    const reassembler = new Reassembler(1 << 20)
    const results = parts.map(part => reassembler.push(part))
    assert.match(results.at(-1).error.message, expected)
  }
})

test('signals are framed as p2pcf frames them: its four 16-bit words, the JSON, padded to an even length', () => {
  const framed = withSignalHeader(JSON.stringify({ renegotiate: true }))
  assert.deepEqual([...new Uint16Array(framed.buffer, 0, 4)], [0x82ab, 0x81cd, 0x1295, 0xa1cb])
  assert.equal(framed.byteLength % 2, 0)
  assert.deepEqual(readSignal(framed), { renegotiate: true })
  assert.equal(readSignal(new TextEncoder().encode('{"renegotiate":true}')), null, 'a plain message is not a signal')
  assert.equal(readSignal(new Uint8Array(3)), null)
})

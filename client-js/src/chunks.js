// Message framing on the DataChannel, wire-compatible with p2pcf 1.3.14.
//
// A message longer than 16,000 bytes, or one whose first two bytes are the chunk magic word, is
// sent as chunks: a 12-byte header (u16 magic 8121, u16 message id, u16 chunk index, u16 last,
// u32 total length; host byte order, little-endian everywhere WebRTC runs) and up to 15,988
// bytes of payload, padded to a multiple of 4. Unlike the original, a message starting with the
// magic word really is chunked (its check compared an array with a number), reassembly refuses
// declared lengths over a bound instead of allocating them, and interleaved messages stay apart.

export const MAX_MESSAGE_BYTES = 16000
export const CHUNK_HEADER_BYTES = 12
export const CHUNK_MAGIC = 8121
export const CHUNK_PAYLOAD_BYTES = MAX_MESSAGE_BYTES - CHUNK_HEADER_BYTES

/** Normalise what `send` accepts to a Uint8Array view. */
export function toBytes (data) {
  if (data instanceof Uint8Array) return data
  if (data instanceof ArrayBuffer) return new Uint8Array(data)
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
  if (typeof data === 'string') return new TextEncoder().encode(data)
  throw new TypeError('send() takes an ArrayBuffer, a typed array or a string')
}

const startsWithMagic = bytes => bytes.byteLength >= 2 && (bytes[0] | (bytes[1] << 8)) === CHUNK_MAGIC

/** Whether `bytes` must travel as chunks. */
export function needsChunking (bytes) {
  return bytes.byteLength > MAX_MESSAGE_BYTES || startsWithMagic(bytes)
}

/** Yield the chunks of `bytes` as ArrayBuffers, lazily (so large sends can wait for the channel). */
export function * chunk (bytes, messageId) {
  for (let offset = 0, index = 0; offset < bytes.byteLength || index === 0; offset += CHUNK_PAYLOAD_BYTES, index++) {
    const size = Math.min(CHUNK_PAYLOAD_BYTES, bytes.byteLength - offset)
    const buffer = new ArrayBuffer(Math.ceil((CHUNK_HEADER_BYTES + size) / 4) * 4)
    const view = new DataView(buffer)
    view.setUint16(0, CHUNK_MAGIC, true)
    view.setUint16(2, messageId, true)
    view.setUint16(4, index, true)
    view.setUint16(6, offset + CHUNK_PAYLOAD_BYTES >= bytes.byteLength ? 1 : 0, true)
    view.setUint32(8, bytes.byteLength, true)
    new Uint8Array(buffer, CHUNK_HEADER_BYTES, size).set(bytes.subarray(offset, offset + size))
    yield buffer
  }
}

/** A partial message untouched for this long is dropped (its sender went away mid-message). */
export const PARTIAL_MESSAGE_TTL_MS = 60_000

/**
 * Reassembles chunked messages from one peer. Every chunk is checked against its message's
 * declared length (index in range, payload of the right size, no duplicates); a message is
 * delivered only with every chunk present; all partial messages of the peer together stay under
 * `maxMessageBytes`; partial messages idle for a minute are dropped. A malformed chunk is an
 * `{ error }` result, never a throw.
 */
export class Reassembler {
  constructor (maxMessageBytes, now = () => Date.now()) {
    this.maxMessageBytes = maxMessageBytes
    this.now = now
    this.pending = new Map() // message id -> { bytes, chunks, seen: Uint8Array, count, touched }
    this.pendingBytes = 0
  }

  /**
   * Feed one DataChannel message. Returns { message } when a whole message is ready (a plain
   * message is ready at once), { error } for a refused chunk, or null while a message is partial.
   */
  push (data) {
    const bytes = toBytes(data)
    if (bytes.byteLength < CHUNK_HEADER_BYTES || !startsWithMagic(bytes)) return { message: bytes }
    this._expire()
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    const id = view.getUint16(2, true)
    const index = view.getUint16(4, true)
    const last = view.getUint16(6, true) !== 0
    const total = view.getUint32(8, true)
    let entry = this.pending.get(id)
    if (!entry) {
      if (total > this.maxMessageBytes - this.pendingBytes) {
        return { error: new RangeError(`refused a ${total}-byte message (over maxMessageBytes with ${this.pendingBytes} bytes already pending)`) }
      }
      const chunks = Math.max(1, Math.ceil(total / CHUNK_PAYLOAD_BYTES))
      entry = { bytes: new Uint8Array(total), chunks, seen: new Uint8Array(chunks), count: 0 }
      this.pending.set(id, entry)
      this.pendingBytes += total
    }
    entry.touched = this.now()
    const offset = index * CHUNK_PAYLOAD_BYTES
    const size = Math.min(CHUNK_PAYLOAD_BYTES, total - offset)
    const payload = bytes.byteLength - CHUNK_HEADER_BYTES
    // A total that changed mid-message, an index past the end, a payload of the wrong size, a
    // chunk seen twice, or a last-chunk flag on the wrong chunk.
    if (total !== entry.bytes.byteLength || index >= entry.chunks || payload < size || payload > size + 3 ||
        entry.seen[index] || last !== (index === entry.chunks - 1)) {
      this._drop(id)
      return { error: new RangeError(`dropped chunked message ${id}: malformed chunk ${index}`) }
    }
    entry.bytes.set(bytes.subarray(CHUNK_HEADER_BYTES, CHUNK_HEADER_BYTES + size), offset)
    entry.seen[index] = 1
    entry.count++
    if (entry.count < entry.chunks && !last) return null
    this._drop(id)
    // Chunks travel in order on a reliable channel: a last chunk with others missing is a broken message.
    if (entry.count < entry.chunks) return { error: new RangeError(`dropped chunked message ${id}: ${entry.chunks - entry.count} chunk(s) missing`) }
    return { message: entry.bytes }
  }

  _drop (id) {
    const entry = this.pending.get(id)
    if (!entry) return
    this.pending.delete(id)
    this.pendingBytes -= entry.bytes.byteLength
  }

  _expire () {
    const now = this.now()
    for (const [id, entry] of this.pending) if (now - entry.touched > PARTIAL_MESSAGE_TTL_MS) this._drop(id)
  }
}

/** Signals (renegotiation) on the DataChannel start with p2pcf's four 16-bit words, little-endian. */
const SIGNAL_HEADER = [0xab, 0x82, 0xcd, 0x81, 0x95, 0x12, 0xcb, 0xa1]

/** A signal as p2pcf frames it: the header, then the JSON, padded to whole 16-bit words. */
export function withSignalHeader (json) {
  const payload = new TextEncoder().encode(json)
  const bytes = new Uint8Array(8 + payload.length + payload.length % 2)
  bytes.set(SIGNAL_HEADER)
  bytes.set(payload, 8)
  return bytes
}

/** The signal in a message, or null for a message that is not one. */
export function readSignal (bytes) {
  return SIGNAL_HEADER.every((byte, i) => bytes[i] === byte) ? JSON.parse(new TextDecoder().decode(bytes.subarray(8)).replace(/\0$/, '')) : null
}

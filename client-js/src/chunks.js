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

/** Reassembles chunked messages from one peer. */
export class Reassembler {
  constructor (maxMessageBytes) {
    this.maxMessageBytes = maxMessageBytes
    this.pending = new Map() // message id -> { bytes, received }
  }

  /**
   * Feed one DataChannel message. Returns { message } when a whole message is ready (a plain
   * message is ready at once), { error } for a refused chunk, or null while a message is partial.
   */
  push (data) {
    const bytes = toBytes(data)
    if (bytes.byteLength < CHUNK_HEADER_BYTES || !startsWithMagic(bytes)) return { message: bytes }
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    const id = view.getUint16(2, true)
    const index = view.getUint16(4, true)
    const last = view.getUint16(6, true) !== 0
    const total = view.getUint32(8, true)
    let entry = this.pending.get(id)
    if (!entry) {
      if (total > this.maxMessageBytes) return { error: new RangeError(`refused a ${total}-byte message (maxMessageBytes is ${this.maxMessageBytes})`) }
      entry = { bytes: new Uint8Array(total), received: 0 }
      this.pending.set(id, entry)
    }
    const offset = index * CHUNK_PAYLOAD_BYTES
    const size = Math.max(0, Math.min(CHUNK_PAYLOAD_BYTES, entry.bytes.byteLength - offset))
    entry.bytes.set(bytes.subarray(CHUNK_HEADER_BYTES, CHUNK_HEADER_BYTES + size), offset)
    entry.received += size
    if (!last) return null
    this.pending.delete(id)
    return { message: entry.bytes }
  }
}

// Speak the P2PCF wire protocol from tests: build bodies like the p2pcf client does, send them,
// and read the answer (status, text, JSON, headers, and our Server-Timing operation counts).
import { randomBytes } from 'node:crypto'

/** A valid DTLS fingerprint field: base64 of 32 bytes. */
export const DTLS = randomBytes(32).toString('base64')

export function randomId (prefix = '') {
  return prefix + randomBytes(8).toString('hex')
}

/** The `d` array of a peer. */
export function peerData (peer, { symmetric = false, ips = ['1.2.3.4'] } = {}) {
  return [peer.session, peer.client, symmetric, DTLS, peer.joinedAt, ips]
}

/** A peer: ids as the p2pcf client would make them. */
export function makePeer (room, n = 0) {
  return { room, context: `ctx-${n}-${randomId()}`, session: `sess-${n}-${randomId()}`, client: `client-${n}`, joinedAt: Date.now() }
}

/** The body of a publish (d + p), as the client sends after its first poll. */
export function publishBody (peer, { t = Date.now(), packages = [], x = 120000 } = {}) {
  return { r: peer.room, k: peer.context, d: peerData(peer), t, x, p: packages }
}

/** The body of a steady poll: identified (d) but not publishing (no p). */
export function pollBody (peer, { t = Date.now(), x = 120000 } = {}) {
  return { r: peer.room, k: peer.context, d: peerData(peer), t, x }
}

export function parseOps (headers) {
  const timing = headers.get('server-timing') || ''
  const match = /r2;desc="get=(\d+) put=(\d+) delete=(\d+) list=(\d+)"/.exec(timing)
  if (!match) return null
  const [get, put, del, list] = match.slice(1).map(Number)
  return { get, put, delete: del, list }
}

/** Send a request; `body` objects are JSON-encoded, strings sent as they are. */
export async function send (url, { method = 'POST', headers = { 'Content-Type': 'application/json ' }, body } = {}) {
  const payload = body === undefined ? undefined : typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body)
  const started = performance.now()
  const res = await fetch(url, { method, headers, body: payload })
  const text = await res.text()
  let json = null
  try { json = JSON.parse(text) } catch {}
  return { status: res.status, text, json, headers: res.headers, ops: parseOps(res.headers), ms: performance.now() - started }
}

export const post = (url, body, headers) => send(url, { body, ...(headers ? { headers } : {}) })

export const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

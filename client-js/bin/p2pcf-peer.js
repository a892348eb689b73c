#!/usr/bin/env node
// p2pcf-peer: a command-line P2PCF peer (client-js in Node). Joins a room through a worker, prints
// peers as they connect (with the candidate pair WebRTC selected: host, srflx or relay) and leave,
// sends each stdin line to every peer and prints what arrives; streams files with --send and saves
// them with --receive. `p2pcf-peer --help` lists the options.
import { createHash } from 'node:crypto'
import { createReadStream, createWriteStream, mkdirSync, statSync } from 'node:fs'
import { basename, join } from 'node:path'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { P2PCF } from '../src/index.js'

const USAGE = `usage: p2pcf-peer --worker URL --room ROOM [options]

  --name NAME              client id shown to others (default: this host's name)
  --stun URL               a STUN server (repeatable; none given: no STUN)
  --turn URL,USER,PASS     a TURN server (repeatable)
  --transport KIND         polling (default), websocket or auto
  --send FILE              stream FILE to every peer once connected
  --receive DIR            save incoming files in DIR
  --json                   print events as JSON lines
  --exit-after-connect N   exit 0 once connected to N peers (with --send or --receive:
                           once N files are sent or received)
  --timeout SECONDS        with --exit-after-connect: give up after this long (default 60)
  --connect-timeout SECONDS  give up on one connection attempt after this long (default 30;
                           a hole punch through NATs with STUN and TURN can take 10-20 s)`

const FILE_CHUNK_BYTES = 256 * 1024
/** Binary messages starting with these 4 bytes carry file data: then a 4-byte transfer id. */
const FILE_MAGIC = [0x50, 0x32, 0x50, 0x46] // "P2PF"

function fail (message, code = 2) {
  process.stderr.write(`p2pcf-peer: ${message}\n`)
  process.exit(code)
}

let args
try {
  args = parseArgs({
    options: {
      worker: { type: 'string' },
      room: { type: 'string' },
      name: { type: 'string' },
      stun: { type: 'string', multiple: true, default: [] },
      turn: { type: 'string', multiple: true, default: [] },
      transport: { type: 'string', default: 'polling' },
      send: { type: 'string' },
      receive: { type: 'string' },
      json: { type: 'boolean', default: false },
      'exit-after-connect': { type: 'string' },
      timeout: { type: 'string', default: '60' },
      'connect-timeout': { type: 'string', default: '30' },
      help: { type: 'boolean', default: false }
    }
  }).values
} catch (err) {
  fail(`${err.message}\n${USAGE}`)
}
if (args.help) {
  console.log(USAGE)
  process.exit(0)
}
if (!args.worker || !args.room) fail(`--worker and --room are required\n${USAGE}`)
const exitAfter = args['exit-after-connect'] === undefined ? null : Number(args['exit-after-connect'])
if (exitAfter !== null && !(Number.isInteger(exitAfter) && exitAfter > 0)) fail('--exit-after-connect takes a positive whole number')
const timeoutS = Number(args.timeout)
if (!(timeoutS > 0)) fail('--timeout takes a positive number of seconds')
const connectTimeoutS = Number(args['connect-timeout'])
if (!(connectTimeoutS > 0)) fail('--connect-timeout takes a positive number of seconds')
const turnIceServers = args.turn.map(spec => {
  const [urls, username, credential] = spec.split(',')
  if (!urls || !username || !credential) fail(`--turn takes URL,USER,PASS (got ${spec})`)
  return { urls, username, credential }
})

let wrtc
try {
  wrtc = (await import('@roamhq/wrtc')).default
} catch {
  fail('no WebRTC implementation for Node: install one with `npm install @roamhq/wrtc` (an optional dependency of p2pcf-client)')
}
let WebSocket = globalThis.WebSocket
if (args.transport !== 'polling' && !WebSocket) {
  try { WebSocket = (await import('ws')).default } catch { fail(`--transport ${args.transport} needs a WebSocket: install \`ws\` or use Node 22+`) }
}

const started = Date.now()
/** One event: a JSON line, or a line for people. */
function print (event, human) {
  if (args.json) console.log(JSON.stringify({ event: event.event, ms: Date.now() - started, ...event }))
  else console.log(human)
}

let p2pcf
try {
  p2pcf = new P2PCF(args.name || (await import('node:os')).hostname().padEnd(4, '-'), args.room, {
    workerUrl: args.worker,
    rtc: wrtc,
    stunIceServers: args.stun.map(urls => ({ urls })),
    turnIceServers,
    transport: args.transport,
    WebSocket,
    connectTimeoutMs: connectTimeoutS * 1000
  })
} catch (err) {
  fail(err.message)
}

/** The candidate pair in use: { local: {type, address, port, protocol}, remote: {...} }. */
async function selectedPair (peer) {
  const report = await peer.getStats()
  const stats = [...report.values()]
  const byId = id => stats.find(s => s.id === id)
  const transport = stats.find(s => s.type === 'transport' && s.selectedCandidatePairId)
  const pair = (transport && byId(transport.selectedCandidatePairId)) ||
    stats.find(s => s.type === 'candidate-pair' && (s.selected || (s.nominated && s.state === 'succeeded')))
  if (!pair) return null
  const side = c => c && { type: c.candidateType, address: c.address ?? c.ip, port: c.port, protocol: c.protocol }
  return { local: side(byId(pair.localCandidateId)), remote: side(byId(pair.remoteCandidateId)) }
}
const describe = end => end ? `${end.type} ${end.address}:${end.port}` : '?'

const connectedAt = new Map()
p2pcf.on('peerconnect', async peer => {
  connectedAt.set(peer.id, Date.now())
  const pair = await selectedPair(peer).catch(() => null)
  print({ event: 'connect', peer: peer.id, client: peer.client_id, ...pair },
    `connected to ${peer.client_id} (${peer.id.slice(0, 8)}) via ${describe(pair?.local)} <-> ${describe(pair?.remote)}`)
  if (args.send) {
    sendFile(peer).then(() => done('sent'), err => print({ event: 'error', message: err.message }, `error: ${err.message}`))
  } else if (!args.receive) done('connected')
})

/** With --exit-after-connect N: exit 0 once N peers are connected (and with --send or --receive, their files done). */
const finished = { connected: 0, sent: 0, received: 0 }
function done (what) {
  finished[what]++
  const counted = args.send ? finished.sent : args.receive ? finished.received : p2pcf.connectedSessions.length
  if (exitAfter !== null && counted >= exitAfter) {
    // Linger a moment: the other side's channel may open a few milliseconds after ours.
    setTimeout(() => {
      p2pcf.destroy()
      setTimeout(() => process.exit(0), 200)
    }, 1500)
  }
}
p2pcf.on('peerclose', peer => print({ event: 'close', peer: peer.id, client: peer.client_id }, `${peer.client_id} left`))
p2pcf.on('peerfailed', (peer, reason) => print({ event: 'failed', peer: peer.id, client: peer.client_id, reason }, `could not connect to ${peer.client_id}: ${reason}`))
p2pcf.on('error', err => print({ event: 'error', message: err.message }, `error: ${err.message}`))

const incoming = new Map() // transfer id -> { name, size, received, hash, out, from }
p2pcf.on('msg', (peer, data) => {
  const bytes = new Uint8Array(data)
  if (bytes.length >= 8 && FILE_MAGIC.every((b, i) => bytes[i] === b)) return fileData(peer, bytes)
  const text = new TextDecoder().decode(bytes)
  let control = null
  try { control = JSON.parse(text) } catch {}
  if (control?.p2pcfPeer === 'file-start' || control?.p2pcfPeer === 'file-end') return fileControl(peer, control)
  if (control?.p2pcfPeer === 'file-ack') return acks.get(`${peer.id}/${control.id}`)?.(control)
  print({ event: 'message', peer: peer.id, client: peer.client_id, text }, `${peer.client_id}: ${text}`)
})

function fileControl (peer, control) {
  const key = `${peer.id}/${control.id}`
  if (control.p2pcfPeer === 'file-start') {
    if (!args.receive) return print({ event: 'file-ignored', client: peer.client_id, name: control.name }, `${peer.client_id} sends ${control.name}; pass --receive DIR to save it`)
    mkdirSync(args.receive, { recursive: true })
    const name = basename(String(control.name)) || 'file'
    incoming.set(key, { name, size: control.size, received: 0, hash: createHash('sha256'), out: createWriteStream(join(args.receive, name)) })
    return
  }
  const file = incoming.get(key)
  if (!file) return
  incoming.delete(key)
  file.out.end()
  const sha256 = file.hash.digest('hex')
  const ok = sha256 === control.sha256 && file.received === file.size
  p2pcf.send(peer, JSON.stringify({ p2pcfPeer: 'file-ack', id: control.id, sha256, ok })).catch(() => {})
  print({ event: 'file-received', client: peer.client_id, name: file.name, bytes: file.received, sha256, ok },
    `received ${file.name} from ${peer.client_id}: ${file.received} bytes, sha256 ${sha256} ${ok ? '(matches)' : '(DOES NOT MATCH)'}`)
  done('received')
}

function fileData (peer, bytes) {
  const id = new DataView(bytes.buffer, bytes.byteOffset).getUint32(4)
  const file = incoming.get(`${peer.id}/${id}`)
  if (!file) return
  const chunk = bytes.subarray(8)
  file.received += chunk.length
  file.hash.update(chunk)
  file.out.write(chunk)
}

let nextTransfer = 1
const acks = new Map() // `${peer}/${transfer id}` -> resolve, for the receiver's acknowledgement

/** Stream the file to `peer`; resolves once the peer has acknowledged it whole (its SHA-256). */
async function sendFile (peer) {
  const { size } = statSync(args.send)
  const id = nextTransfer++
  const name = basename(args.send)
  const hash = createHash('sha256')
  await p2pcf.send(peer, JSON.stringify({ p2pcfPeer: 'file-start', id, name, size }))
  let sent = 0
  let lastReport = 0
  for await (const piece of createReadStream(args.send, { highWaterMark: FILE_CHUNK_BYTES })) {
    if (!peer.connected) throw new Error(`${peer.client_id} left during the transfer`)
    const message = new Uint8Array(8 + piece.length)
    message.set(FILE_MAGIC)
    new DataView(message.buffer).setUint32(4, id)
    message.set(piece, 8)
    hash.update(piece)
    await p2pcf.send(peer, message)
    sent += piece.length
    if (Date.now() - lastReport > 500 || sent === size) {
      lastReport = Date.now()
      print({ event: 'progress', client: peer.client_id, name, bytes: sent, size }, `sending ${name} to ${peer.client_id}: ${Math.round((sent / Math.max(size, 1)) * 100)}%`)
    }
  }
  const sha256 = hash.digest('hex')
  const acknowledged = new Promise(resolve => acks.set(`${peer.id}/${id}`, resolve))
  await p2pcf.send(peer, JSON.stringify({ p2pcfPeer: 'file-end', id, sha256 }))
  const ack = await acknowledged
  acks.delete(`${peer.id}/${id}`)
  const ok = ack.sha256 === sha256 && ack.ok === true
  print({ event: 'file-sent', client: peer.client_id, name, bytes: sent, sha256, ok },
    `sent ${name} to ${peer.client_id}: ${sent} bytes, sha256 ${sha256}, ${ok ? 'received intact' : 'RECEIVED DAMAGED'}`)
  if (!ok) throw new Error(`${peer.client_id} received ${name} damaged`)
}

if (!process.stdin.isTTY || !args.json) {
  createInterface({ input: process.stdin }).on('line', line => {
    if (line) p2pcf.broadcast(line)
  })
}

if (exitAfter !== null) {
  setTimeout(() => {
    const have = p2pcf.connectedSessions.length
    process.stderr.write(`p2pcf-peer: timed out after ${timeoutS} s: connected to ${have} of ${exitAfter} peer(s) in room ${args.room}\n`)
    p2pcf.destroy()
    setTimeout(() => process.exit(1), 200)
  }, timeoutS * 1000).unref()
}

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    p2pcf.destroy()
    setTimeout(() => process.exit(0), 300)
  })
}

print({ event: 'start', room: args.room, session: p2pcf.sessionId, transport: args.transport }, `joining ${args.room} at ${args.worker} as ${p2pcf.clientId} (${p2pcf.sessionId.slice(0, 8)})`)
await p2pcf.start()

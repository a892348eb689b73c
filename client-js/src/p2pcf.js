// P2PCF: serverless WebRTC signalling through a P2PCF worker, for browsers and Node.
//
// Same API, options and wire format as p2pcf 1.3.14 (peers of both connect to each other), written
// from scratch with no runtime dependencies. Signalling goes through the worker in one of two ways
// (`transport`). Over a WebSocket to our worker's room (socket.js), every peer announces its peer
// data to the room and each package is delivered the moment it is ready. Over polling (the
// default, wire-identical to p2pcf, so rooms can mix in p2pcf peers): a read-only first poll, then
// identified polls that carry packages only when they change or the data nears expiry
// (heartbeat); fast polling after any change in the peer list, slow otherwise, optional idle
// polling. Peers connect with the minimal-SDP hole punch: the later joiner ("B") publishes one
// package with its ICE credentials, fingerprint and candidates, the other ("A") answers with its
// candidates; everything after that travels over the DataChannel.
import { Emitter } from './emitter.js'
import { Peer } from './peer.js'
import { Reassembler, chunk, needsChunking, readSignal, toBytes, withSignalHeader } from './chunks.js'
import { WorkerSocket } from './socket.js'
import { analyseCandidates, createSdp, parseCandidate, readCredentials, reflexiveCandidates, settle } from './sdp.js'
import { reconcile } from './room.js'

const DEFAULT_STUN = [{ urls: 'stun:stun1.l.google.com:19302' }, { urls: 'stun:global.stun.twilio.com:3478' }]
const DEFAULT_TURN = ['turn:openrelay.metered.ca:80', 'turn:openrelay.metered.ca:443', 'turn:openrelay.metered.ca:443?transport=tcp']
  .map(urls => ({ urls, username: 'openrelayproject', credential: 'openrelayproject' }))
/** Candidates are done once quiet this long (at least; see `settle`), or this long quiet at most. */
const TRICKLE_QUIET_MS = 500
const TRICKLE_TIMEOUT_MS = 3000
/** The probe waits longer: a second STUN server's late answer is what reveals a symmetric NAT. */
const PROBE_QUIET_MS = 1500
const PROBE_TIMEOUT_MS = 5000
const PACKAGE_LIFETIME_MS = 60000
/** Keep at most this much queued on a DataChannel while sending a large message. */
const SEND_BUFFER_HIGH = 1 << 20
const SEND_BUFFER_LOW = 256 << 10
/**
 * Joined-at announced by a client that cannot pin its DTLS certificate (no
 * RTCPeerConnection.generateCertificate, as in Node's @roamhq/wrtc), so every connection has its
 * own fingerprint. Roles go by joined-at, so such a client always takes the offering side (B),
 * whose fingerprint travels in its package; between two of them, the answering side (A) puts its
 * real fingerprint in its package and B waits for it before applying the answer.
 */
const UNPINNED_JOINED_AT = 1
/**
 * Firefox fails ICE when no candidate pair works within 5 s of the remote description, and B's
 * answer carries no candidates of A's, only hints: a Firefox B that answers at once fails whenever
 * A's checks or package come later than that. So, as p2pcf 1.3.14 does there, a Firefox B holds
 * its answer until A's package arrives and applies it with A's candidates.
 */
const HOLD_ANSWER = /firefox/i.test(globalThis.navigator?.userAgent)

function randomString (length) {
  const bytes = crypto.getRandomValues(new Uint8Array(length))
  return btoa(String.fromCharCode(...bytes)).replaceAll('=', '')
}

/** The context id survives page reloads in history state (browsers), else comes from options. */
function contextIdFor (option) {
  const history = globalThis.history
  if (!history?.replaceState) return option || randomString(20)
  if (!history.state?._p2pcfContextId) history.replaceState({ ...history.state, _p2pcfContextId: option || randomString(20) }, '')
  return history.state._p2pcfContextId
}

export class P2PCF extends Emitter {
  constructor (clientId = '', roomId = '', options = {}) {
    super()
    if (typeof clientId !== 'string' || clientId.length < 4) throw new Error('Client ID must be at least four characters')
    if (typeof roomId !== 'string' || roomId.length < 4) throw new Error('Room ID must be at least four characters')
    const o = options
    Object.assign(this, {
      clientId,
      roomId,
      workerUrl: (o.workerUrl || 'https://p2pcf.minddrop.workers.dev').replace(/\/$/, ''),
      stunIceServers: o.stunIceServers || DEFAULT_STUN,
      turnIceServers: o.turnIceServers || DEFAULT_TURN,
      networkChangePollIntervalMs: o.networkChangePollIntervalMs || 15000,
      stateExpirationIntervalMs: o.stateExpirationIntervalMs || 120000,
      stateHeartbeatWindowMs: o.stateHeartbeatWindowMs || 30000,
      fastPollingDurationMs: o.fastPollingDurationMs || 10000,
      fastPollingRateMs: o.fastPollingRateMs || 1500,
      slowPollingRateMs: o.slowPollingRateMs || 5000,
      idlePollingAfterMs: o.idlePollingAfterMs || Infinity,
      idlePollingRateMs: o.idlePollingRateMs || Infinity,
      connectTimeoutMs: o.connectTimeoutMs || 15000,
      maxMessageBytes: o.maxMessageBytes || 2 ** 26, // 64 MiB
      fetchTimeoutMs: o.fetchTimeoutMs || 20000,
      peerOptions: o.rtcPeerConnectionOptions || {},
      peerConstraints: o.rtcPeerConnectionProprietaryConstraints,
      sdpTransform: o.sdpTransform,
      transport: o.transport || 'polling'
    })
    if (!['auto', 'websocket', 'polling'].includes(this.transport)) throw new Error("transport must be 'auto', 'websocket' or 'polling'")
    this._WebSocket = o.WebSocket || globalThis.WebSocket
    if (this.transport === 'websocket' && !this._WebSocket) throw new Error("transport 'websocket' needs options.WebSocket (in Node 20: the ws package)")
    this.signalling = null // 'websocket' or 'polling', once known
    this.rtc = o.rtc || globalThis
    this._fetch = o.fetch || ((...args) => globalThis.fetch(...args))
    this.contextId = contextIdFor(o.contextId)
    this._reset()
  }

  /** A fresh session's state: at construction, and when a page comes back from the bfcache. */
  _reset () {
    this.sessionId = randomString(20)
    this.peers = new Map()
    this.packages = []
    this.destroyed = false
    this._left = false
    this._cert = null
    this._network = null
    this._dataTimestamp = null
    this._lastPackages = null
    this._deleteKey = null
    this._sentFirstPoll = false
    this._processed = new Map() // remote session -> data timestamp already handled
    this._answeredOffers = new Map() // remote session -> the ICE ufrag of the last offer we answered as A
    this._reassemblers = new Map()
    this._timers = new Set()
    const now = Date.now()
    this._stopFastAt = now + this.fastPollingDurationMs
    this._startIdleAt = now + this.idlePollingAfterMs
    this._sendQueues = new Map() // peer -> the promise of its last send, to keep order
    this._socket = null
    this._socketRows = new Map() // session -> its peer row, from its announcement
    this._socketPackages = new Map() // session -> the package it sent us
  }

  _later (ms, fn) {
    if (this.destroyed || !Number.isFinite(ms)) return
    const timer = setTimeout(() => { this._timers.delete(timer); fn() }, ms)
    this._timers.add(timer)
    return timer
  }

  /** Probe the network, then join the room. Safe to `destroy()` at any point. */
  async start () {
    const { RTCPeerConnection } = this.rtc
    if (!RTCPeerConnection) throw new Error("no WebRTC here: pass options.rtc (in Node: rtc: require('@roamhq/wrtc'))")
    this._cert = await RTCPeerConnection.generateCertificate?.({ name: 'ECDSA', namedCurve: 'P-256' }) ?? null
    this.startedAtTimestamp = this._cert ? Date.now() : UNPINNED_JOINED_AT
    if (this.destroyed) return
    this._network = await this._probe()
    if (this.destroyed) return
    this._reprobe()
    if (globalThis.addEventListener && !this._onUnload) {
      // Leaving the page leaves the room. A page kept in the back-forward cache and shown again
      // rejoins as a new session (its connections and room row are gone) instead of staying dead.
      // Any other destroy(), the app's own in its pagehide handler too, ends that for good.
      this._onUnload = event => { this._freeze = event.persisted; this.destroy() }
      this._onShow = event => {
        if (!event.persisted || !this.destroyed) return
        this._reset()
        this.start().catch(err => this.emit('error', err))
      }
      globalThis.addEventListener('pagehide', this._onUnload)
      globalThis.addEventListener('pageshow', this._onShow)
    }
    if (this.transport === 'polling' || !this._WebSocket) {
      this._loop()
      return
    }
    // The key keeps our session id ours: only a socket with it may replace ours in the room.
    const query = `clientId=${encodeURIComponent(this.sessionId)}&key=${encodeURIComponent(randomString(20))}`
    this._socket = new WorkerSocket({
      url: `${this.workerUrl.replace(/^http/, 'ws')}/ws/room/${encodeURIComponent(this.roomId)}?${query}`,
      WebSocket: this._WebSocket,
      onFrame: frame => this._onSocketFrame(frame),
      onUnavailable: this.transport === 'auto' ? () => { this._socket = null; this._loop() } : null,
      onReplaced: () => this.emit('error', new Error('another connection took this session\'s place in the room'))
    })
  }

  /** A frame from the room socket. Peer data and packages travel as `{d, t}` and `{p}`. */
  _onSocketFrame ({ type, fromId, peers, clientId, data, signal, error }) {
    if (type === 'peers') {
      this.signalling = 'websocket'
      for (const id of this._socketRows.keys()) if (!peers.includes(id)) this._socketGone(id)
      this._announce()
      for (const pkg of this.packages) this._sendPackage(pkg) // again, after a reconnect
    } else if (type === 'peer_leave') {
      this._socketGone(clientId)
    } else if (type === 'broadcast' || type === 'signal') {
      const { d, t, p } = (type === 'broadcast' ? data : signal) || {}
      if (Array.isArray(d) && d[0] === fromId) {
        const known = this._socketRows.has(fromId)
        this._socketRows.set(fromId, [...d, t])
        if (!known && type === 'broadcast') this._announce(fromId) // introduce ourselves to the newcomer
        // A peer announcing itself again may have missed what we sent while it reconnected.
        if (known && type === 'broadcast') for (const pkg of this.packages) if (pkg[0] === fromId) this._sendPackage(pkg)
      }
      if (Array.isArray(p) && p[0] === this.sessionId && p[1] === fromId) this._socketPackages.set(fromId, p)
      this._handleSocketRoom()
    } else if (type === 'error' && !String(error).startsWith('Peer not in the room')) {
      this.emit('error', new Error(`worker: ${error}`))
    }
  }

  _handleSocketRoom () {
    this._handle([...this._socketRows.values()], [...this._socketPackages.values()])
  }

  _socketGone (session) {
    this._socketRows.delete(session)
    this._socketPackages.delete(session)
    this._handleSocketRoom()
  }

  /** Our peer data, to the room or to one peer. */
  _announce (to) {
    this._dataTimestamp = Date.now()
    const data = { d: this._peerData(), t: this._dataTimestamp }
    this._socket?.send(to ? { type: 'signal', targetId: to, signal: data } : { type: 'broadcast', data })
  }

  _sendPackage (pkg) {
    this._socket?.send({ type: 'signal', targetId: pkg[0], signal: { p: pkg } })
  }

  _reprobe () {
    const session = this.sessionId
    this._later(this.networkChangePollIntervalMs, async () => {
      let network
      try {
        network = await this._probe()
      } catch (err) {
        this.emit('error', err)
        return this._reprobe() // a failed probe skips one round, not all the rest
      }
      if (this.destroyed || session !== this.sessionId) return
      const before = this._network
      // Without a pinned certificate every connection has its own fingerprint: not a change.
      const fingerprintChanged = this._cert && network.fingerprint !== before.fingerprint
      const changed = fingerprintChanged || network.isSymmetric !== before.isSymmetric ||
        network.reflexiveIps.join() !== before.reflexiveIps.join()
      this._network = network
      if (changed) {
        this._dataTimestamp = null // republish
        if (this._socket) this._announce()
      }
      this._reprobe()
    })
  }

  /** Gather candidates against STUN: our reflexive IPs, NAT kind, and the DTLS fingerprint. */
  async _probe () {
    const config = { iceServers: this.stunIceServers, ...(this._cert && { certificates: [this._cert] }) }
    const pc = new this.rtc.RTCPeerConnection(config)
    const candidates = []
    let abort
    try {
      pc.createDataChannel('probe')
      const done = new Promise(resolve => {
        const next = settle(resolve, PROBE_QUIET_MS, PROBE_TIMEOUT_MS)
        pc.onicecandidate = ({ candidate }) => {
          if (candidate?.candidate) candidates.push(parseCandidate(candidate.candidate))
          next(candidate?.candidate || null)
        }
        abort = this._abortProbe = () => next(null) // done now, with what we have
      })
      const offer = await pc.createOffer()
      await pc.setLocalDescription(offer)
      await done
      return { ...analyseCandidates(candidates), fingerprint: readCredentials(offer.sdp).fingerprint }
    } finally {
      if (this._abortProbe === abort) this._abortProbe = null
      pc.close()
    }
  }

  _peerData () {
    const n = this._network
    return [this.sessionId, this.clientId, n.isSymmetric, n.fingerprint, this.startedAtTimestamp, n.reflexiveIps]
  }

  async _post (payload, extraHeaders = {}, keepalive = false) {
    const res = await this._fetch(this.workerUrl, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...extraHeaders },
      body: JSON.stringify(payload),
      keepalive,
      signal: AbortSignal.timeout(this.fetchTimeoutMs) // a hung request must not stall polling
    })
    if (!res.ok) throw new Error(`worker answered ${res.status}: ${await res.text()}`)
    return res.json()
  }

  async _loop () {
    if (this.destroyed) return
    this.signalling = 'polling'
    const started = Date.now()
    const session = this.sessionId // a page back from the bfcache runs a new session's loop
    let delay = this.slowPollingRateMs
    try {
      delay = await this._step()
    } catch (err) {
      if (session === this.sessionId) this.emit('error', err)
    }
    if (session === this.sessionId) this._later(Math.max(0, started + delay - Date.now()), () => this._loop()) // as p2pcf: from the request's start
  }

  /** One poll; returns how long to wait before the next. */
  async _step () {
    const now = Date.now()
    const payload = { r: this.roomId, k: this.contextId }
    const heartbeatDue = this._dataTimestamp === null || now - this._dataTimestamp >= this.stateExpirationIntervalMs - this.stateHeartbeatWindowMs
    const packagesChanged = this._lastPackages !== JSON.stringify(this.packages)
    if (heartbeatDue || packagesChanged) {
      this._dataTimestamp = now
      this.packages = this.packages.filter(pkg => now - pkg[7] <= PACKAGE_LIFETIME_MS)
    }
    const identify = p => Object.assign(p, { d: this._peerData(), t: this._dataTimestamp, x: this.stateExpirationIntervalMs })
    const publish = p => { p.p = this.packages; this._lastPackages = JSON.stringify(this.packages); return p }
    if (this._sentFirstPoll) {
      identify(payload)
      if (heartbeatDue || packagesChanged) publish(payload)
    }
    const session = this.sessionId // a page back from the bfcache is a new session meanwhile
    const answer = await this._post(payload)
    if (session !== this.sessionId) return Infinity
    this._keyArrived(answer.dk)
    if (this.destroyed) return Infinity
    if (!this._sentFirstPoll && answer.ps.length === 0) {
      // Alone in the room: publish at once so the next joiner finds us sooner.
      const { dk } = await this._post(publish(identify(payload)))
      if (session !== this.sessionId) return Infinity
      this._keyArrived(dk)
      if (this.destroyed) return Infinity
    }
    this._sentFirstPoll = true
    const known = [...this.peers.keys()]
    this._handle(answer.ps, answer.pk)

    // As p2pcf: fast again whenever the listed peers are not the ones we have connections (or
    // handshakes) with, so a listed peer we are not yet talking to keeps polling fast.
    const ids = answer.ps.map(row => row[0])
    if (ids.length !== known.length || ids.some(id => !known.includes(id))) {
      this._stopFastAt = now + this.fastPollingDurationMs
      this._startIdleAt = now + this.idlePollingAfterMs
    }
    const handshaking = [...this.peers.values()].some(peer => !peer.connected)
    if (now < this._stopFastAt || handshaking) return this.fastPollingRateMs
    if (now > this._startIdleAt) return this.idlePollingRateMs
    return this.slowPollingRateMs
  }

  /** Carry out the room's rules (room.js) for the room as listed. */
  _handle (rows, packages) {
    const me = { session: this.sessionId, symmetric: this._network.isSymmetric, startedAt: this.startedAtTimestamp }
    for (const { answer, offer, finish, drop, pkg, reason } of reconcile(me, rows, packages, this.peers, this._processed, this._answeredOffers)) {
      if (this.destroyed) return // an event handler destroyed us
      const row = answer || offer
      if (row) {
        const [session, clientId, symmetric, fingerprint, startedAt, reflexiveIps, timestamp] = row
        const iceServers = me.symmetric || symmetric ? this.turnIceServers : this.stunIceServers
        this._processed.set(session, timestamp)
        if (answer) {
          this._answeredOffers.set(session, pkg[2])
          this._connectAsA(session, clientId, iceServers, pkg)
        } else {
          this._connectAsB(session, clientId, iceServers, startedAt === UNPINNED_JOINED_AT ? null : fingerprint, reflexiveIps)
        }
      } else if (finish) {
        this._finishAsB(this.peers.get(finish), pkg)
      } else {
        this._drop(this.peers.get(drop), reason)
      }
    }
  }

  _newPeer (session, clientId, initiator, iceServers) {
    const config = { ...this.peerOptions, iceServers, ...(this._cert && { certificates: [this._cert] }) }
    const peer = new Peer({ id: session, clientId, initiator, rtc: this.rtc, config, constraints: this.peerConstraints, sdpTransform: this.sdpTransform })
    this.peers.set(session, peer)
    this._reassemblers.set(session, new Reassembler(this.maxMessageBytes))
    peer.on('connect', () => {
      this.packages = this.packages.filter(pkg => pkg[0] !== session)
      this.emit('peerconnect', peer)
    })
    peer.on('data', data => this._receive(peer, data))
    peer.on('signal', signal => this.send(peer, withSignalHeader(JSON.stringify(signal))))
    peer.on('error', err => this.emit('error', err, peer))
    peer.on('close', () => {
      const ours = this.peers.get(peer.id) === peer // not already dropped (which says why)
      this._forget(peer)
      if (peer.wasConnected) this.emit('peerclose', peer)
      else if (ours) this._failed(peer, 'the connection failed (ICE or DTLS)')
    })
    this._later(this.connectTimeoutMs, () => { if (!peer.wasConnected) this._drop(peer, 'did not connect in time') })
    return peer
  }

  /** Collect our candidates for a package until gathering ends or the trickle timeout. */
  _gather (peer, pkg) {
    const finish = () => {
      peer.off('candidate', onCandidate)
      // Even with no candidates: the other side can still find us from its own, and a B that
      // cannot pin our certificate needs the fingerprint in an A package.
      if (!peer.destroyed && !peer.connected && !this.packages.includes(pkg)) {
        this.packages.push(pkg)
        this._sendPackage(pkg)
      }
    }
    const next = settle(finish, TRICKLE_QUIET_MS, TRICKLE_TIMEOUT_MS)
    const onCandidate = line => {
      if (line) pkg[8].push(line)
      next(line || null)
    }
    peer.on('candidate', onCandidate)
    peer.once('close', () => next())
  }

  async _connectAsA (session, clientId, iceServers, [, , ufrag, pwd, fingerprint, myUfrag, myPwd, , candidates]) {
    const peer = this._newPeer(session, clientId, false, iceServers)
    // Our candidates go back to B too, in case its hole punch toward us fails.
    // Echo the ufrag B chose for us, so B can tell this answer from one to an earlier offer.
    const pkg = [session, this.sessionId, null, null, null, myUfrag, null, Date.now(), []]
    peer.handshake.offerUfrag = ufrag
    this._gather(peer, pkg)
    try {
      const answer = await peer.acceptOffer(createSdp(true, ufrag, pwd, fingerprint), myUfrag, myPwd)
      pkg[4] = readCredentials(answer).fingerprint // our real one, for a B that could not trust the published one
      await peer.addCandidates(candidates)
    } catch (err) {
      this._drop(peer, err.message)
    }
  }

  async _connectAsB (session, clientId, iceServers, theirFingerprint, theirIps) {
    const peer = this._newPeer(session, clientId, true, iceServers)
    const theirUfrag = randomString(12)
    peer.handshake.theirUfrag = theirUfrag
    const theirPwd = randomString(32)
    const pkg = [session, this.sessionId, null, null, null, theirUfrag, theirPwd, Date.now(), []]
    this._gather(peer, pkg)
    try {
      const mine = readCredentials(await peer.createOffer())
      pkg[2] = mine.ufrag
      pkg[3] = mine.pwd
      pkg[4] = mine.fingerprint
      peer.handshake.answerWith = fingerprint => createSdp(false, theirUfrag, theirPwd, fingerprint) + reflexiveCandidates(theirIps)
      // With a trustworthy published fingerprint, answer now (one signalling message; a Firefox
      // B waits for A's package, HOLD_ANSWER); otherwise wait for A's package, which carries A's
      // real one (two messages).
      peer.handshake.fingerprint = theirFingerprint
      if (theirFingerprint && !HOLD_ANSWER) {
        peer.handshake.answered = true // before the await: A's package must not apply a second answer meanwhile
        await peer.acceptAnswer(peer.handshake.answerWith(theirFingerprint))
      }
    } catch (err) {
      this._drop(peer, err.message)
    }
  }

  /** Peer B, on A's package: apply the answer if still pending, then A's candidates. */
  async _finishAsB (peer, [, , , , fingerprint, , , , candidates]) {
    try {
      const h = peer.handshake
      h.applied = true
      if (!h.answered) {
        fingerprint = h.fingerprint || fingerprint // a held answer: p2pcf's A sends no fingerprint
        if (!fingerprint) throw new Error('the answering peer sent no DTLS fingerprint')
        h.answered = true
        await peer.acceptAnswer(h.answerWith(fingerprint))
      }
      if (!peer.connected) await peer.addCandidates(candidates)
    } catch (err) {
      this._drop(peer, err.message)
    }
  }

  _drop (peer, reason) {
    if (!peer || this.peers.get(peer.id) !== peer) return
    this._forget(peer)
    peer.destroy() // a connected one gets its peerclose
    if (!peer.wasConnected) this._failed(peer, reason)
  }

  /** A peer that never connected: say why, and over the socket try the pair again. */
  _failed (peer, reason) {
    this.emit('peerfailed', peer, reason)
    if (this._socket) {
      // Over the socket, rows change only when a peer announces itself: try this pair again
      // from scratch (a new offer, or waiting for one), a second from now.
      this._processed.delete(peer.id)
      this._socketPackages.delete(peer.id)
      this._later(1000, () => this._handleSocketRoom())
    }
  }

  _forget (peer) {
    if (this.peers.get(peer.id) !== peer) return
    this.peers.delete(peer.id)
    this._reassemblers.delete(peer.id)
    this.packages = this.packages.filter(pkg => pkg[0] !== peer.id)
  }

  /** The sessions we have an open connection with, as p2pcf's `connectedSessions`. */
  get connectedSessions () {
    return [...this.peers.values()].filter(p => p.connected).map(p => p.id)
  }

  _receive (peer, data) {
    const result = this._reassemblers.get(peer.id)?.push(data)
    if (!result) return
    if (result.error) return this.emit('error', result.error, peer)
    let signal = null
    try { signal = readSignal(result.message) } catch {}
    if (signal) peer.signal(signal)
    else this.emit('msg', peer, result.message.buffer.byteLength === result.message.byteLength ? result.message.buffer : result.message.slice().buffer)
  }

  /**
   * Send to one peer (ArrayBuffer, typed array or string). Large messages are chunked and wait
   * for the DataChannel to drain, so memory stays bounded. Messages to one peer go out in the
   * order `send` was called, whatever their sizes. The promise resolves when the message is all
   * queued, and rejects if the connection closed first; callers that do not await it (as with
   * p2pcf's synchronous `send`) get no unhandled rejection.
   */
  send (peer, data) {
    if (!peer?.connected) return Promise.resolve()
    const bytes = toBytes(data)
    const previous = this._sendQueues.get(peer) || Promise.resolve()
    const sent = previous.catch(() => {}).then(() => this._sendNow(peer, bytes))
    this._sendQueues.set(peer, sent)
    // (this handler also keeps a rejection unhandled-free; the caller's own handlers still see it)
    sent.catch(() => {}).then(() => { if (this._sendQueues.get(peer) === sent) this._sendQueues.delete(peer) })
    return sent
  }

  async _sendNow (peer, bytes) {
    const cut = () => new Error(`the connection to ${peer.id} closed before the message was sent`)
    if (!peer.connected) throw cut()
    if (!needsChunking(bytes)) return peer.send(bytes)
    const messageId = Math.floor(Math.random() * 65536)
    for (const part of chunk(bytes, messageId)) {
      if (peer.bufferedAmount > SEND_BUFFER_HIGH) await peer.drained(SEND_BUFFER_LOW)
      if (!peer.connected) throw cut()
      peer.send(part)
    }
  }

  broadcast (data) {
    const all = Promise.all([...this.peers.values()].map(peer => this.send(peer, data)))
    all.catch(() => {}) // as with send: awaiting callers see a rejection, others get no unhandled one
    return all
  }

  /** Leave the room: stop every timer, close every connection, and tell the worker. */
  destroy () {
    if (this._onUnload && !this._freeze) {
      globalThis.removeEventListener('pagehide', this._onUnload)
      globalThis.removeEventListener('pageshow', this._onShow)
      this._onUnload = null
    }
    this._freeze = false
    if (this.destroyed) return
    this.destroyed = true
    for (const timer of this._timers) clearTimeout(timer)
    this._timers.clear()
    this._abortProbe?.()
    // Closing them ourselves is no failure: forgotten first, connected ones still get peerclose.
    const peers = [...this.peers.values()]
    this.peers.clear()
    for (const peer of peers) peer.destroy()
    this._socket?.close()
    this._leave()
  }

  /** A delete key from the worker: kept, or used at once if we were destroyed while it travelled. */
  _keyArrived (key) {
    if (!key) return
    this._deleteKey = key
    if (this.destroyed) this._leave()
  }

  /** Tell the worker we left (once we have a delete key; a publish in flight brings one later). */
  _leave () {
    if (!this._deleteKey || !this._network || this._left) return
    this._left = true
    const leave = { r: this.roomId, k: this.contextId, d: this._peerData(), t: Date.now(), x: this.stateExpirationIntervalMs, dk: this._deleteKey }
    this._post(leave, { 'X-Worker-Method': 'DELETE' }, true).catch(() => {})
  }
}

export default P2PCF

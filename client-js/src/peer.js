// One WebRTC connection to one remote peer, with the parts of simple-peer's surface that P2PCF
// users touch: send, addStream/removeStream, addTrack/removeTrack, destroy, and the events
// connect, data, track, stream, close, error.
//
// Before the DataChannel opens, the P2PCF class drives the minimal-SDP handshake through
// `createOffer`/`acceptAnswer` (peer B) or `acceptOffer` (peer A) and collects ICE candidates from
// 'candidate' events. After it opens, every renegotiation (media) follows simple-peer's protocol,
// which p2pcf 1.3.14 peers speak, with its signal objects emitted as 'signal' for P2PCF to carry
// over the DataChannel: only the initiator offers ({type:'offer'|'answer', sdp}); the other side
// asks it to ({renegotiate}), and asks for a transceiver for a track the initiator's offer had no
// place for ({transceiverRequest}); a request that comes while an offer is out waits for it.
import { Emitter } from './emitter.js'
import { setCredentials } from './sdp.js'

export class Peer extends Emitter {
  constructor ({ id, clientId, initiator, rtc, config, constraints, sdpTransform }) {
    super()
    this.id = id
    this.client_id = clientId
    this.initiator = initiator
    this.connected = false
    this.wasConnected = false // once connected, stays true: what ends it is a close, not a failure
    this.destroyed = false
    /**
     * The signalling client's record of this connection's minimal-SDP handshake (the ICE ufrags
     * that tell attempts apart, the answer waiting for A's fingerprint, what was applied).
     */
    this.handshake = {}
    this._streams = new Set()
    this._transform = sdpTransform || (sdp => sdp) // as simple-peer: applied to every local description
    this._pc = new rtc.RTCPeerConnection(config, constraints)
    this._pc.onicecandidate = ({ candidate }) => {
      if (this.destroyed) return
      if (!this.connected) this.emit('candidate', candidate?.candidate || null)
      else if (candidate) this.emit('signal', { type: 'candidate', candidate: { candidate: candidate.candidate, sdpMLineIndex: candidate.sdpMLineIndex, sdpMid: candidate.sdpMid } })
    }
    this._pc.onsignalingstatechange = () => {
      if (this._pc.signalingState !== 'stable') return
      this._negotiating = false
      if (this._queued) this._needsNegotiation()
      this._queued = false
    }
    this._pc.onconnectionstatechange = () => {
      if (['failed', 'closed'].includes(this._pc.connectionState)) this.destroy()
    }
    this._pc.ontrack = ({ track, streams }) => {
      this.emit('track', track, streams[0])
      for (const stream of streams) {
        if (this._streams.has(stream.id)) continue
        this._streams.add(stream.id)
        this.emit('stream', stream)
      }
    }
    this._pc.onnegotiationneeded = () => this._needsNegotiation()
    if (initiator) this._useChannel(this._pc.createDataChannel(`p2pcf-${id}`))
    else this._pc.ondatachannel = ({ channel }) => this._useChannel(channel)
  }

  _useChannel (channel) {
    this._channel = channel
    channel.binaryType = 'arraybuffer'
    channel.onopen = () => {
      if (this.destroyed) return
      this.connected = this.wasConnected = true
      this.emit('connect')
    }
    channel.onmessage = ({ data }) => this.emit('data', data)
    channel.onclose = () => this.destroy()
  }

  /** Peer B: create and apply the local offer; returns its SDP. */
  async createOffer () {
    return this._setLocal('offer', (await this._pc.createOffer()).sdp)
  }

  /** Apply a local description after the user's `sdpTransform`; returns what was applied. */
  async _setLocal (type, sdp) {
    // Peer A keeps the ICE credentials B chose for it in every description (see acceptOffer).
    if (this._credentials) sdp = setCredentials(sdp, ...this._credentials)
    sdp = this._transform(sdp)
    await this._pc.setLocalDescription({ type, sdp })
    return sdp
  }

  /** Peer B: apply the answer built from peer A's published data. */
  async acceptAnswer (sdp) {
    await this._pc.setRemoteDescription({ type: 'answer', sdp })
  }

  /**
   * Peer A: apply the offer built from B's package and answer with the credentials B chose;
   * returns the answer. Every later description keeps them, as p2pcf's sdpTransform does:
   * Chromium reuses the applied credentials by itself, but Firefox writes the ones it generated
   * into its next answer, an ICE restart the offer did not ask for (a Firefox on the other side
   * rejects it: "Remote description indicates ICE restart but offer did not request ICE restart").
   */
  async acceptOffer (sdp, ufrag, pwd) {
    this._credentials = [ufrag, pwd]
    await this._pc.setRemoteDescription({ type: 'offer', sdp })
    return this._setLocal('answer', (await this._pc.createAnswer()).sdp)
  }

  /** Add remote ICE candidate lines (from a package). */
  async addCandidates (lines) {
    for (const candidate of lines) {
      await this._pc.addIceCandidate({ candidate, sdpMLineIndex: 0 }).catch(err => this.emit('error', err))
    }
  }

  /** Handle a signal received over the DataChannel. */
  async signal (data) {
    if (this.destroyed) return
    const pc = this._pc
    try {
      if (this.initiator && data.renegotiate) this._needsNegotiation()
      if (this.initiator && data.transceiverRequest) this.addTransceiver(data.transceiverRequest.kind, data.transceiverRequest.init)
      if (data.candidate) await pc.addIceCandidate(data.candidate)
      if (data.type === 'offer' && !this.initiator) {
        await pc.setRemoteDescription(data)
        this.emit('signal', { type: 'answer', sdp: await this._setLocal('answer', (await pc.createAnswer()).sdp) })
        // A track we added that the offer had no place for: ask the initiator for one.
        for (const t of pc.getTransceivers?.() || []) {
          if (!t.mid && t.sender.track && !t._requested) {
            t._requested = true
            this.addTransceiver(t.sender.track.kind)
          }
        }
      } else if (data.type === 'answer' && pc.signalingState === 'have-local-offer') {
        await pc.setRemoteDescription(data)
      }
    } catch (err) {
      this.emit('error', err)
    }
  }

  /** Batch what changed in this tick into one negotiation (after the handshake, which P2PCF drives). */
  _needsNegotiation () {
    if (!this.connected || this._batching) return
    this._batching = true
    setTimeout(() => {
      this._batching = false
      if (this.destroyed) return
      if (this._negotiating) return (this._queued = true) // after the current one, once stable
      this._negotiating = true
      if (this.initiator) this._offer()
      else this.emit('signal', { type: 'renegotiate', renegotiate: true })
    })
  }

  async _offer () {
    try {
      this.emit('signal', { type: 'offer', sdp: await this.createOffer() })
    } catch (err) {
      this._negotiating = false
      this.emit('error', err)
    }
  }

  /** As simple-peer: the initiator adds it; the other side asks the initiator to. */
  addTransceiver (kind, init) {
    if (this.initiator) this._pc.addTransceiver(kind, init)
    else this.emit('signal', { type: 'transceiverRequest', transceiverRequest: { kind, init } })
  }

  send (data) {
    this._channel.send(data)
  }

  addTrack (track, stream) {
    return this._pc.addTrack(track, stream)
  }

  replaceTrack (oldTrack, newTrack) {
    return this._pc.getSenders().find(s => s.track === oldTrack)?.replaceTrack(newTrack)
  }

  removeTrack (track) {
    const sender = this._pc.getSenders().find(s => s.track === track)
    if (sender) this._pc.removeTrack(sender)
  }

  addStream (stream) {
    for (const track of stream.getTracks()) this.addTrack(track, stream)
  }

  removeStream (stream) {
    for (const track of stream.getTracks()) this.removeTrack(track)
  }

  /** The connection's RTCStatsReport (the selected candidate pair, bytes, round-trip time). */
  getStats () {
    return this._pc.getStats()
  }

  /** Bytes queued on the DataChannel, and a promise for when it drains below `threshold`. */
  get bufferedAmount () { return this._channel?.bufferedAmount ?? 0 }

  /**
   * Resolves once the queue is at or below `threshold`: on 'bufferedamountlow' where the
   * implementation fires it, else by checking every 20 ms (Node's @roamhq/wrtc never fires it).
   */
  async drained (threshold) {
    const channel = this._channel
    if (!channel) return
    channel.bufferedAmountLowThreshold = threshold
    while (!this.destroyed && channel.bufferedAmount > threshold) {
      await new Promise(resolve => { channel.onbufferedamountlow = resolve; setTimeout(resolve, 20) })
    }
  }

  destroy () {
    if (this.destroyed) return
    this.destroyed = true
    this.connected = false
    try { this._channel?.close() } catch {}
    try { this._pc.close() } catch {}
    this.emit('close')
  }
}

// One RTCPeerConnection between a sender and a receiver, with what both sides need: candidates
// held until the remote description is set, a connection timeout, one close callback whatever
// ends it (failure, timeout, close), and the sender's bitrate and codec preferences.

export const DEFAULT_ICE_SERVERS = [{ urls: 'stun:stun.l.google.com:19302' }]
/** Candidates held for a connection whose description has not arrived yet. */
const MAX_EARLY_CANDIDATES = 64

export const isObject = value => typeof value === 'object' && value !== null && !Array.isArray(value)

export function newId () {
  return globalThis.crypto?.randomUUID?.() ?? Array.from(crypto.getRandomValues(new Uint8Array(16)), b => b.toString(16).padStart(2, '0')).join('')
}

export function dispatch (target, type, detail) {
  target.dispatchEvent(new CustomEvent(type, { detail }))
}

export class PeerLink {
  constructor ({ rtc, config, timeoutMs, onCandidate, onConnect, onClose }) {
    this.pc = new rtc.RTCPeerConnection(config)
    this.channel = null
    this.closed = false
    this._onClose = onClose
    this._early = []
    this._described = false
    this._answered = []
    this.pc.onicecandidate = ({ candidate }) => candidate && onCandidate(candidate.toJSON?.() ?? { candidate: candidate.candidate, sdpMid: candidate.sdpMid, sdpMLineIndex: candidate.sdpMLineIndex })
    this.pc.onconnectionstatechange = () => {
      const state = this.pc.connectionState
      if (state === 'connected') {
        clearTimeout(this._timer)
        onConnect()
      } else if (state === 'failed' || state === 'closed') {
        this._end(new Error(`connection ${state}`))
      }
    }
    this._timer = setTimeout(() => this._end(new Error(`not connected after ${timeoutMs / 1000} s`)), timeoutMs)
  }

  addStream (stream, { audioCodecs, videoCodecs } = {}) {
    for (const track of stream.getTracks()) {
      const transceiver = this.pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] })
      preferCodecs(transceiver, track.kind === 'audio' ? audioCodecs : videoCodecs)
    }
  }

  openChannel (label, setup) {
    this.channel = this.pc.createDataChannel(label)
    setup(this.channel)
  }

  async createOffer () {
    const offer = await this.pc.createOffer()
    await this.pc.setLocalDescription(offer)
    return { type: offer.type, sdp: offer.sdp }
  }

  async acceptOffer (offer) {
    if (!isObject(offer) || offer.type !== 'offer' || typeof offer.sdp !== 'string') throw new Error('a malformed offer')
    await this.pc.setRemoteDescription({ type: 'offer', sdp: offer.sdp })
    await this._flushEarly()
    const answer = await this.pc.createAnswer()
    await this.pc.setLocalDescription(answer)
    return { type: answer.type, sdp: answer.sdp }
  }

  async acceptAnswer (answer) {
    if (!isObject(answer) || answer.type !== 'answer' || typeof answer.sdp !== 'string') throw new Error('a malformed answer')
    if (this._described) return // a duplicate
    await this.pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp })
    await this._flushEarly()
    for (const fn of this._answered.splice(0)) fn()
  }

  whenAnswered (fn) {
    if (this._described) fn()
    else this._answered.push(fn)
  }

  async addCandidate (candidate) {
    if (!isObject(candidate) || typeof candidate.candidate !== 'string') throw new Error('a malformed candidate')
    if (!this._described) {
      if (this._early.length < MAX_EARLY_CANDIDATES) this._early.push(candidate)
      return
    }
    await this.pc.addIceCandidate(candidate)
  }

  async _flushEarly () {
    this._described = true
    for (const candidate of this._early.splice(0)) {
      await this.pc.addIceCandidate(candidate).catch(() => {})
    }
  }

  /** Cap each outgoing track's bitrate (kbps), where the implementation allows it. */
  async limitBitrate (audioKbps, videoKbps) {
    for (const sender of this.pc.getSenders?.() ?? []) {
      const kbps = sender.track?.kind === 'audio' ? audioKbps : videoKbps
      if (!kbps || !sender.getParameters) continue
      try {
        const parameters = sender.getParameters()
        parameters.encodings = parameters.encodings?.length ? parameters.encodings : [{}]
        for (const encoding of parameters.encodings) encoding.maxBitrate = kbps * 1000
        await sender.setParameters(parameters)
      } catch {}
    }
  }

  _end (error) {
    if (this.closed) return
    this.close()
    this._onClose(error)
  }

  close () {
    if (this.closed) return
    this.closed = true
    clearTimeout(this._timer)
    this.pc.onconnectionstatechange = null
    try { this.channel?.close() } catch {}
    try { this.pc.close() } catch {}
  }
}

/** Put the preferred codecs (mime types, e.g. 'video/VP8') first, where the browser allows it. */
function preferCodecs (transceiver, mimeTypes) {
  const capabilities = globalThis.RTCRtpSender?.getCapabilities?.(transceiver.sender.track.kind)
  if (!mimeTypes?.length || !capabilities || !transceiver.setCodecPreferences) return
  const rank = codec => {
    const i = mimeTypes.findIndex(m => m.toLowerCase() === codec.mimeType.toLowerCase())
    return i < 0 ? mimeTypes.length : i
  }
  try { transceiver.setCodecPreferences([...capabilities.codecs].sort((a, b) => rank(a) - rank(b))) } catch {}
}

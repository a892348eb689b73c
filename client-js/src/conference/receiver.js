// Receiver: watches every sender of a room (its stream, its data channel, its state).
//
// It listens on ['receiver', room] and ['receiver', room, id], asks senders for a connection with
// an `invoke` on ['sender', room] when it starts, answers their offers, and keeps asking every
// `pingInterval` seconds while no sender is connected (at most `pingAttempts` times in a row), so
// it finds a sender that starts later or restarts. A sender announcing itself (its `invoke` on
// ['receiver', room]) is asked at once. Every bad message is an `error` event.
import { DEFAULT_ICE_SERVERS, dispatch, isObject, newId, PeerLink } from './link.js'

export class Receiver extends EventTarget {
  constructor ({ driver, iceServers = DEFAULT_ICE_SERVERS, connectionTimeout = 30, pingInterval = 30, pingAttempts = 10, rtc = globalThis } = {}) {
    super()
    if (!driver) throw new Error('Receiver needs a driver: an object with on, off and emit')
    Object.assign(this, { driver, iceServers, connectionTimeout, pingInterval, pingAttempts, rtc })
    this.id = null
    this.room = null
    this.links = new Map() // sender id -> { link, state }
    this._handler = message => this._receive(message)
  }

  start ({ room = 'default', credentials } = {}) {
    if (this.id) this.stop()
    Object.assign(this, { id: newId(), room, credentials })
    this.driver.on(['receiver', room], this._handler)
    this.driver.on(['receiver', room, this.id], this._handler)
    this._pings = 0
    this._pinger = setInterval(() => this._ping(), this.pingInterval * 1000)
    this._invoke(['sender', room])
  }

  stop () {
    if (!this.id) return
    clearInterval(this._pinger)
    for (const id of [...this.links.keys()]) this._dispose(id)
    this.driver.off(['receiver', this.room], this._handler)
    this.driver.off(['receiver', this.room, this.id], this._handler)
    this.id = null
  }

  _invoke (namespace) {
    this.driver.emit(namespace, { type: 'invoke', id: this.id, ...(this.credentials === undefined ? {} : { credentials: this.credentials }) })
  }

  _ping () {
    const connected = [...this.links.values()].some(entry => entry.connected)
    if (connected) this._pings = 0
    else if (this._pings < this.pingAttempts) {
      this._pings++
      this._invoke(['sender', this.room])
    }
  }

  async _receive (message) {
    if (!this.id) return
    if (!isObject(message) || typeof message.id !== 'string' || !message.id) {
      return dispatch(this, 'error', { id: null, error: new Error('a signalling message without an id') })
    }
    const { type, id } = message
    if (id === this.id) return
    const entry = this.links.get(id)
    try {
      if (type === 'invoke') {
        if (!entry) this._invoke(['sender', this.room, id])
      } else if (type === 'offer') {
        await this._offered(id, message)
      } else if (type === 'candidate') {
        if (!entry) throw new Error(`a candidate from ${id}, which has no connection here`)
        await entry.link.addCandidate(message.candidate)
      } else if (type === 'sync') {
        if (!entry) return // a room-wide update from a sender we do not watch
        entry.state = isObject(message.state) ? message.state : {}
        dispatch(this, 'sync', { id, state: entry.state })
      } else if (type === 'dispose') {
        if (entry) return this._dispose(id, message.error ? new Error(`the sender closed: ${message.error}`) : null, false)
        if (message.error) throw new Error(`the sender refused: ${message.error}`)
      } else {
        throw new Error(`unknown message type: ${String(type).slice(0, 40)}`)
      }
    } catch (error) {
      dispatch(this, 'error', { id, error })
      if (type === 'offer' && !this.links.get(id)?.connected) this._dispose(id, error)
    }
  }

  async _offered (id, { offer, state }) {
    // One offer per sender session: another for a connection already up is refused (anyone on
    // the driver could send one under the sender's id), one for a connection in progress restarts it.
    if (this.links.get(id)?.connected) throw new Error(`an offer from ${id}, which is already connected`)
    if (this.links.has(id)) this._dispose(id, null, false)
    const session = this.id
    const entry = { state: isObject(state) ? state : {}, connected: false, streams: new Set() }
    entry.link = new PeerLink({
      rtc: this.rtc,
      config: { iceServers: this.iceServers },
      timeoutMs: this.connectionTimeout * 1000,
      onCandidate: candidate => this.driver.emit(['sender', this.room, id], { type: 'candidate', id: this.id, candidate }),
      onConnect: () => {
        entry.connected = true
        this._pings = 0
        dispatch(this, 'connect', { id, peer: entry.link.pc, state: entry.state })
      },
      onClose: error => this._dispose(id, error)
    })
    this.links.set(id, entry)
    const pc = entry.link.pc
    pc.ontrack = ({ track, streams }) => {
      const stream = streams[0] ?? new this.rtc.MediaStream([track])
      if (entry.streams.has(stream.id)) return
      entry.streams.add(stream.id)
      dispatch(this, 'stream', { id, stream, state: entry.state })
    }
    pc.ondatachannel = ({ channel }) => {
      entry.link.channel = channel
      channel.binaryType = 'arraybuffer'
      channel.onmessage = ({ data }) => dispatch(this, 'message', { id, message: data, state: entry.state })
      dispatch(this, 'channel', { id, channel, state: entry.state })
    }
    const answer = await entry.link.acceptOffer(offer)
    if (this.id !== session) return // stopped while answering: stop() closed the link
    this.driver.emit(['sender', this.room, id], { type: 'answer', id: this.id, answer })
  }

  _dispose (id, error = null, tell = true) {
    const entry = this.links.get(id)
    if (!entry) return
    this.links.delete(id)
    entry.link.close()
    if (tell) this.driver.emit(['sender', this.room, id], { type: 'dispose', id: this.id })
    dispatch(this, 'dispose', { id, peer: entry.link.pc, state: entry.state, ...(error ? { error } : {}) })
  }
}

// Sender: broadcasts one stream (and per-receiver data channels) to every receiver of a room.
//
// Signalling, over any driver: the sender listens on ['sender', room] and ['sender', room, id];
// a receiver's `invoke` there ({id, credentials}) asks for a connection. The sender offers
// ({type:'offer', id, offer, state}) on ['receiver', room, receiverId], takes the answer and
// trickled candidates back, and announces itself with an `invoke` on ['receiver', room] when it
// starts, so receivers that were waiting ask at once. `sync` and `dispose` go to receivers the
// same way. Every bad message is an `error` event; nothing a driver delivers can throw here.
import { DEFAULT_ICE_SERVERS, dispatch, isObject, newId, PeerLink } from './link.js'

export class Sender extends EventTarget {
  constructor ({ driver, iceServers = DEFAULT_ICE_SERVERS, verify = () => true, connectionTimeout = 30, queueSize = 10, audioBitrate, videoBitrate, audioCodecs, videoCodecs, rtc = globalThis } = {}) {
    super()
    if (!driver) throw new Error('Sender needs a driver: an object with on, off and emit')
    Object.assign(this, { driver, iceServers, verify, connectionTimeout, queueSize, audioBitrate, videoBitrate, audioCodecs, videoCodecs, rtc })
    this.id = null
    this.room = null
    this.state = {}
    this.links = new Map() // receiver id -> PeerLink
    this._queues = new Map() // receiver id -> messages waiting for its channel
    this._handler = message => this._receive(message)
  }

  /** Start broadcasting `stream` (optional) to every receiver of `room`. */
  start ({ stream = null, room = 'default', state = {}, dataChannel = false } = {}) {
    if (this.id) this.stop()
    Object.assign(this, { id: newId(), room, stream, state: { ...state }, dataChannel: dataChannel || !stream })
    this.driver.on(['sender', room], this._handler)
    this.driver.on(['sender', room, this.id], this._handler)
    this.driver.emit(['receiver', room], { type: 'invoke', id: this.id })
  }

  /** Close every connection, tell every receiver, and stop listening. */
  stop () {
    if (!this.id) return
    for (const id of [...this.links.keys()]) this._dispose(id)
    this.driver.off(['sender', this.room], this._handler)
    this.driver.off(['sender', this.room, this.id], this._handler)
    this._queues.clear()
    this.id = null
  }

  /**
   * Send to one receiver (`id`) or all. A receiver whose channel is not open yet gets it once it
   * opens; at most `queueSize` messages wait per receiver, the oldest dropped first.
   */
  send (data, id) {
    const targets = id === undefined ? [...this.links.keys()] : [id]
    for (const target of targets) {
      const channel = this.links.get(target)?.channel
      if (channel?.readyState === 'open') {
        channel.send(data)
        continue
      }
      if (!this.links.has(target)) continue
      const queue = this._queues.get(target) || []
      queue.push(data)
      while (queue.length > this.queueSize) queue.shift()
      this._queues.set(target, queue)
    }
  }

  /** Change the state receivers see (merged into the current one unless `merge` is false). */
  sync (state, merge = true) {
    this.state = merge ? { ...this.state, ...state } : { ...state }
    if (this.id) this.driver.emit(['receiver', this.room], { type: 'sync', id: this.id, state: this.state })
  }

  _emitTo (id, message) {
    this.driver.emit(['receiver', this.room, id], { ...message, id: this.id })
  }

  async _receive (message) {
    if (!this.id) return
    if (!isObject(message) || typeof message.id !== 'string' || !message.id) {
      return dispatch(this, 'error', { id: null, error: new Error('a signalling message without an id') })
    }
    const { type, id } = message
    if (id === this.id) return // our own announcement, on a driver that echoes
    try {
      if (type === 'invoke') return await this._invoked(id, message.credentials)
      const link = this.links.get(id)
      if (type === 'answer' || type === 'candidate' || type === 'dispose') {
        if (!link) throw new Error(`a ${type} from ${id}, which has no connection here`)
        if (type === 'answer') return await link.acceptAnswer(message.answer)
        if (type === 'candidate') return await link.addCandidate(message.candidate)
        return this._dispose(id, null, false)
      }
      throw new Error(`unknown message type: ${String(type).slice(0, 40)}`)
    } catch (error) {
      dispatch(this, 'error', { id, error })
    }
  }

  async _invoked (id, credentials) {
    if (this.links.has(id)) return
    const session = this.id
    let allowed = false
    try { allowed = await this.verify(id, credentials) } catch (error) { dispatch(this, 'error', { id, error }) }
    if (this.id !== session) return // stopped (or restarted) while verifying
    if (!allowed) return this._emitTo(id, { type: 'dispose', error: 'not allowed' })
    if (this.links.has(id)) return
    const unsent = [] // candidates found before the offer went out follow it
    let offered = false
    const link = new PeerLink({
      rtc: this.rtc,
      config: { iceServers: this.iceServers },
      timeoutMs: this.connectionTimeout * 1000,
      onCandidate: candidate => offered ? this._emitTo(id, { type: 'candidate', candidate }) : unsent.push(candidate),
      onConnect: () => dispatch(this, 'connect', { id, peer: link.pc }),
      onClose: error => this._dispose(id, error)
    })
    this.links.set(id, link)
    if (this.stream) link.addStream(this.stream, { audioCodecs: this.audioCodecs, videoCodecs: this.videoCodecs })
    if (this.dataChannel) {
      link.openChannel(id, channel => {
        channel.binaryType = 'arraybuffer'
        channel.onopen = () => {
          for (const data of this._queues.get(id) || []) channel.send(data)
          this._queues.delete(id)
        }
        channel.onmessage = ({ data }) => dispatch(this, 'message', { id, message: data })
      })
    }
    try {
      const offer = await link.createOffer()
      if (this.id !== session) return link.close()
      this._emitTo(id, { type: 'offer', offer, state: this.state })
      offered = true
      for (const candidate of unsent.splice(0)) this._emitTo(id, { type: 'candidate', candidate })
      link.whenAnswered(() => link.limitBitrate(this.audioBitrate, this.videoBitrate))
    } catch (error) {
      this._dispose(id, error)
    }
  }

  _dispose (id, error = null, tell = true) {
    const link = this.links.get(id)
    if (!link) return
    this.links.delete(id)
    this._queues.delete(id)
    link.close()
    if (tell) this._emitTo(id, { type: 'dispose' })
    dispatch(this, 'dispose', { id, peer: link.pc, ...(error ? { error } : {}) })
  }
}

// One WebSocket to our worker, kept up: a room (/ws/room/:roomId, P2PCF-WS frames, which P2PCF
// uses instead of polling) or a pub/sub namespace (/pubsub/:namespace, the conference driver's).
//
// It keeps the socket up: reconnects with jittered exponential backoff, and sends `ping` every 30 s
// (answered by the worker's `pong` auto-response without waking the room's Durable Object), so
// proxies and NATs keep an idle socket open. A socket that never reached the room (the worker has
// no WebSocket endpoint: the reference worker, an R2-only deployment) after three tries reports
// `onUnavailable` once instead of retrying, when the caller can fall back to polling. A socket
// replaced by another with our id (close code 4000) reports `onReplaced` and stops. A socket has
// reached the room when `joinedBy` accepts a frame (a room's `peers`), or at once when opened if
// `joinedBy` is null; `onOpen` runs on every (re)connection.
const PING_INTERVAL_MS = 30000
const JOIN_TIMEOUT_MS = 5000
const FIRST_BACKOFF_MS = 500
const MAX_BACKOFF_MS = 30000
/** Tries before a socket that never reached the room counts as unavailable. */
const TRIES_BEFORE_UNAVAILABLE = 3

export class WorkerSocket {
  constructor ({ url, WebSocket, onFrame, onUnavailable, onReplaced, onOpen, joinedBy = frame => frame?.type === 'peers' }) {
    Object.assign(this, { _url: url, _WebSocket: WebSocket, _onFrame: onFrame, _onUnavailable: onUnavailable, _onReplaced: onReplaced, _onOpen: onOpen, _joinedBy: joinedBy })
    this._attempts = 0
    this._joinedOnce = false
    this._closed = false
    this._connect()
  }

  _connect () {
    if (this._closed) return
    const ws = this._ws = new this._WebSocket(this._url)
    const notJoined = setTimeout(() => ws.close(), JOIN_TIMEOUT_MS)
    const ping = setInterval(() => ws.readyState === 1 && ws.send('ping'), PING_INTERVAL_MS)
    const joined = () => {
      clearTimeout(notJoined)
      this._joinedOnce = true
      this._attempts = 0
    }
    ws.onopen = () => {
      if (!this._joinedBy) joined()
      this._onOpen?.()
    }
    ws.onmessage = ({ data }) => {
      let frame = null
      try { frame = JSON.parse(data) } catch { return } // `pong`
      if (this._joinedBy?.(frame)) joined()
      try {
        this._onFrame(frame)
      } catch {} // a frame of an unexpected shape: nothing to do with it
    }
    ws.onerror = () => {} // a close event follows
    ws.onclose = ({ code }) => {
      clearTimeout(notJoined)
      clearInterval(ping)
      if (this._ws !== ws || this._closed) return
      this._ws = null
      if (!this._joinedOnce && this._onUnavailable && this._attempts + 1 >= TRIES_BEFORE_UNAVAILABLE) {
        this._closed = true
        return this._onUnavailable()
      }
      if (code === 4000) {
        this._closed = true
        return this._onReplaced?.()
      }
      const backoff = Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** this._attempts++)
      this._retry = setTimeout(() => this._connect(), backoff * (0.5 + Math.random() / 2))
    }
  }

  /** Send a frame; false when the socket is not open (the caller resends after the next join). */
  send (frame) {
    if (this._ws?.readyState !== 1) return false
    this._ws.send(JSON.stringify(frame))
    return true
  }

  close () {
    this._closed = true
    clearTimeout(this._retry)
    this._ws?.close(1000)
  }
}

// Signalling drivers for Sender and Receiver: anything with on(namespace, handler),
// off(namespace, handler) and emit(namespace, message), where a namespace is an array of strings.
// Delivery is asynchronous in all three (a handler never runs inside emit), so a driver can be
// swapped for another without changing the order in which the peers' code runs.

const key = namespace => JSON.stringify(namespace)

/** Handlers by namespace key; shared by the drivers below. */
class Handlers {
  constructor () { this._byKey = new Map() }

  add (namespace, handler) {
    const k = key(namespace)
    if (!this._byKey.has(k)) this._byKey.set(k, new Set())
    const set = this._byKey.get(k)
    set.add(handler)
    return set.size === 1
  }

  /** Returns true when no handler is left for the namespace. */
  remove (namespace, handler) {
    const k = key(namespace)
    const set = this._byKey.get(k)
    if (!set) return false
    set.delete(handler)
    if (set.size > 0) return false
    this._byKey.delete(k)
    return true
  }

  keys () { return this._byKey.keys() }

  deliver (k, message) {
    for (const handler of this._byKey.get(k) || []) {
      // Still subscribed when it runs: a handler removed in between (stop()) gets nothing.
      queueMicrotask(() => this._byKey.get(k)?.has(handler) && handler(message))
    }
  }
}

/** In-process pub/sub: every Sender and Receiver given the same driver object can talk. */
export class MemoryDriver {
  constructor () { this._handlers = new Handlers() }
  on (namespace, handler) { this._handlers.add(namespace, handler) }
  off (namespace, handler) { this._handlers.remove(namespace, handler) }
  emit (namespace, message) { this._handlers.deliver(key(namespace), message) }
}

/** Tabs of one origin, no server: a BroadcastChannel, plus delivery inside this tab. */
export class BroadcastChannelDriver {
  constructor ({ name = 'p2pcf-conference', BroadcastChannel = globalThis.BroadcastChannel } = {}) {
    this._handlers = new Handlers()
    this._channel = new BroadcastChannel(name)
    this._channel.onmessage = ({ data }) => data && this._handlers.deliver(data.k, data.m)
  }

  on (namespace, handler) { this._handlers.add(namespace, handler) }
  off (namespace, handler) { this._handlers.remove(namespace, handler) }
  emit (namespace, message) {
    const k = key(namespace)
    this._channel.postMessage({ k, m: message })
    this._handlers.deliver(k, message)
  }

  close () { this._channel.close() }
}

/**
 * Our worker's topic pub/sub (`/pubsub/:namespace`): a namespace array is one topic (its JSON).
 * Subscriptions are renewed after a reconnect (jittered backoff, 0.5 s doubling to 30 s); up to
 * `queueSize` messages emitted while the socket is down are sent when it is back.
 */
export class WebSocketDriver {
  constructor ({ workerUrl, namespace = 'default', WebSocket = globalThis.WebSocket, queueSize = 100 } = {}) {
    if (!workerUrl) throw new Error('WebSocketDriver needs a workerUrl')
    if (!WebSocket) throw new Error('WebSocketDriver needs a WebSocket implementation (in Node 20, the ws package)')
    this._url = `${workerUrl.replace(/\/$/, '').replace(/^http/, 'ws')}/pubsub/${encodeURIComponent(namespace)}`
    this._WebSocket = WebSocket
    this._handlers = new Handlers()
    this._pending = []
    this._queueSize = queueSize
    this._attempts = 0
    this._closed = false
    this._connect()
  }

  _connect () {
    if (this._closed) return
    const ws = this._ws = new this._WebSocket(this._url)
    const ping = setInterval(() => ws.readyState === 1 && ws.send('ping'), 30000)
    ws.onopen = () => {
      this._attempts = 0
      for (const k of this._handlers.keys()) ws.send(JSON.stringify({ type: 'subscribe', topic: k }))
      for (const frame of this._pending.splice(0)) ws.send(frame)
    }
    ws.onmessage = ({ data }) => {
      let frame = null
      try { frame = JSON.parse(data) } catch { return } // `pong`
      if (typeof frame?.topic === 'string') this._handlers.deliver(frame.topic, frame.payload)
      else if (frame?.type === 'error') this.onerror?.(new Error(`worker: ${frame.error}`))
    }
    ws.onerror = () => {}
    ws.onclose = () => {
      clearInterval(ping)
      if (this._closed || this._ws !== ws) return
      const backoff = Math.min(30000, 500 * 2 ** this._attempts++)
      this._retry = setTimeout(() => this._connect(), backoff * (0.5 + Math.random() / 2))
    }
  }

  _send (frame) {
    const text = JSON.stringify(frame)
    if (this._ws?.readyState === 1) return this._ws.send(text)
    this._pending.push(text)
    if (this._pending.length > this._queueSize) this._pending.shift()
  }

  on (namespace, handler) {
    if (this._handlers.add(namespace, handler) && this._ws?.readyState === 1) this._send({ type: 'subscribe', topic: key(namespace) })
  }

  off (namespace, handler) {
    if (this._handlers.remove(namespace, handler) && this._ws?.readyState === 1) this._send({ type: 'unsubscribe', topic: key(namespace) })
  }

  emit (namespace, message) { this._send({ type: 'publish', topic: key(namespace), payload: message }) }

  close () {
    this._closed = true
    clearTimeout(this._retry)
    this._ws?.close(1000)
  }
}

// Signalling drivers for Sender and Receiver: anything with on(namespace, handler),
// off(namespace, handler) and emit(namespace, message), where a namespace is an array of strings.
// Delivery is asynchronous in all three (a handler never runs inside emit), so a driver can be
// swapped for another without changing the order in which the peers' code runs.
import { WorkerSocket } from '../socket.js'

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
 * The socket is kept up by `WorkerSocket` (jittered backoff, 0.5 s doubling to 30 s, ping every
 * 30 s); subscriptions are renewed on every connection, and up to `queueSize` messages emitted
 * while the socket is down are sent when it is back.
 */
export class WebSocketDriver {
  constructor ({ workerUrl, namespace = 'default', WebSocket = globalThis.WebSocket, queueSize = 100 } = {}) {
    if (!workerUrl) throw new Error('WebSocketDriver needs a workerUrl')
    if (!WebSocket) throw new Error('WebSocketDriver needs a WebSocket implementation (in Node 20, the ws package)')
    this._handlers = new Handlers()
    this._pending = []
    this._queueSize = queueSize
    this._socket = new WorkerSocket({
      url: `${workerUrl.replace(/\/$/, '').replace(/^http/, 'ws')}/pubsub/${encodeURIComponent(namespace)}`,
      WebSocket,
      joinedBy: null, // a namespace has no join frame: open is joined
      onOpen: () => {
        for (const k of this._handlers.keys()) this._socket.send({ type: 'subscribe', topic: k })
        for (const frame of this._pending.splice(0)) this._socket.send(frame)
      },
      onFrame: frame => {
        if (typeof frame?.topic === 'string') this._handlers.deliver(frame.topic, frame.payload)
        else if (frame?.type === 'error') this.onerror?.(new Error(`worker: ${frame.error}`))
      }
    })
  }

  _send (frame) {
    if (this._socket.send(frame)) return
    this._pending.push(frame)
    if (this._pending.length > this._queueSize) this._pending.shift()
  }

  on (namespace, handler) {
    if (this._handlers.add(namespace, handler)) this._socket.send({ type: 'subscribe', topic: key(namespace) })
  }

  off (namespace, handler) {
    if (this._handlers.remove(namespace, handler)) this._socket.send({ type: 'unsubscribe', topic: key(namespace) })
  }

  emit (namespace, message) { this._send({ type: 'publish', topic: key(namespace), payload: message }) }

  close () { this._socket.close() }
}

// A minimal event emitter (on / once / off / emit), so the client needs no `events` polyfill.
export class Emitter {
  constructor () { this._handlers = new Map() }

  on (event, handler) {
    if (!this._handlers.has(event)) this._handlers.set(event, [])
    this._handlers.get(event).push(handler)
    return this
  }

  once (event, handler) {
    const wrapped = (...args) => { this.off(event, wrapped); handler(...args) }
    wrapped.original = handler
    return this.on(event, wrapped)
  }

  off (event, handler) {
    const list = this._handlers.get(event)
    if (list) this._handlers.set(event, list.filter(h => h !== handler && h.original !== handler))
    return this
  }

  removeListener (event, handler) { return this.off(event, handler) }

  emit (event, ...args) {
    const handlers = this._handlers.get(event) || []
    for (const handler of handlers) handler(...args)
    return handlers.length > 0
  }
}

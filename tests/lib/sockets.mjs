// WebSocket clients for the suites and the bench (npm `ws`: Node 20 has no global WebSocket).
import WebSocket from 'ws'

/**
 * Open a socket to `path` on the worker at `base` (http URL). Resolves once open to
 * { ws, frames, next(match, ms), send(message), close(code), closed }: `frames` holds the parsed text
 * frames not yet taken by `next`.
 */
export function openSocket (base, path) {
  const ws = new WebSocket(base.replace(/^http/, 'ws') + path)
  const frames = []
  const waiters = []
  const closed = new Promise(resolve => ws.on('close', (code, reason) => resolve({ code, reason: String(reason) })))
  ws.on('message', (data, isBinary) => {
    const frame = isBinary ? { binary: data } : parse(String(data))
    frames.push({ frame, at: performance.now() })
    for (const waiter of [...waiters]) waiter()
  })
  const socket = {
    ws,
    frames,
    closed,
    /** Take the first received frame that `match` accepts, waiting up to `ms` for one. */
    next (match = () => true, ms = 5000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const i = frames.findIndex(f => match(f.frame))
          if (i < 0) return
          const [{ frame }] = frames.splice(i, 1)
          waiters.splice(waiters.indexOf(check), 1)
          clearTimeout(timer)
          resolve(frame)
        }
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(check), 1)
          reject(new Error(`no matching frame within ${ms} ms; got ${JSON.stringify(frames.map(f => f.frame)).slice(0, 400)}`))
        }, ms)
        waiters.push(check)
        check()
      })
    },
    send (message) { ws.send(typeof message === 'string' ? message : JSON.stringify(message)) },
    close (code, reason) { ws.close(code, reason); return closed }
  }
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(socket))
    ws.once('unexpected-response', (req, res) => {
      let body = ''
      res.on('data', d => { body += d })
      res.on('end', () => reject(Object.assign(new Error(`HTTP ${res.statusCode}: ${body}`), { status: res.statusCode, body })))
    })
    ws.once('error', reject)
  })
}

/** A text frame as JSON, or `{ text }` when it is not JSON (the `pong` auto-response). */
function parse (text) {
  try { return JSON.parse(text) } catch { return { text } }
}

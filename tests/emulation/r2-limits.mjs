// R2's documented limits, emulated around whatever bucket a worker has bound, for `wrangler dev`
// (whose local R2 enforces none of them). Used by both workers in the same way:
//
// - a write (put) to a key less than `writeIntervalMs` after that key's last successful write
//   fails as R2 fails it: an error mentioning 429 (R2 allows about one write per second per key;
//   the bench compresses time, so it passes 1000 / compression);
// - a share `failureShare` of all operations fails transiently (an error mentioning 500); half of
//   the failing puts fail after the write landed, as a real 5xx can;
// - every operation is counted, with the most write attempts and the most successful writes any
//   one key took within one interval.
//
// Each worker's entry module wraps its env's buckets per request and answers GET /__r2/stats.
// Nothing here runs in production: these modules are only named by tests/emulation/*.toml.

const OPS = ['get', 'head', 'put', 'delete', 'list']

export function emulationFromEnv (env) {
  return {
    writeIntervalMs: Number(env.EMULATE_R2_WRITE_INTERVAL_MS || 0),
    failureShare: Number(env.EMULATE_R2_FAILURE_SHARE || 0)
  }
}

/** Statistics for one worker instance (wrangler dev runs one isolate). */
export function newStats () {
  return { get: 0, head: 0, put: 0, delete: 0, list: 0, rateLimited: 0, injectedFailures: 0, preconditionFailed: 0, maxAttemptsPerKeyPerInterval: 0, maxWritesPerKeyPerInterval: 0, maxAttemptsKey: null, putsByKind: {} }
}

const attempts = new Map() // key -> recent attempt times
const writes = new Map() // key -> recent successful write times
const lastWrite = new Map()

function track (map, key, now, windowMs) {
  const times = (map.get(key) || []).filter(t => now - t < windowMs)
  times.push(now)
  map.set(key, times)
  return times.length
}

export function isBucket (value) {
  return value && typeof value.get === 'function' && typeof value.put === 'function' &&
    typeof value.delete === 'function' && typeof value.list === 'function'
}

/** `bucket` with R2's limits (when `options` ask for them) and counting. */
export function emulatedBucket (bucket, { writeIntervalMs = 0, failureShare = 0 } = {}, stats) {
  const window = writeIntervalMs || 1000
  const fail = () => {
    stats.injectedFailures++
    throw new Error('R2 500: emulated transient failure (We encountered an internal error. Please try again.)')
  }
  return new Proxy(bucket, {
    get (target, prop) {
      const value = target[prop]
      if (typeof value !== 'function') return value
      if (prop === 'constructor') return value
      if (!OPS.includes(prop)) return value.bind(target)
      return async (...args) => {
        stats[prop]++
        if (prop !== 'put') {
          if (Math.random() < failureShare) fail()
          return value.apply(target, args)
        }
        const key = String(args[0])
        const kind = key.split('/').slice(2, 3)[0]?.replace(/:.*/, '') || key.split('/')[0]
        stats.putsByKind[kind] = (stats.putsByKind[kind] || 0) + 1
        const now = Date.now()
        const tried = track(attempts, key, now, window)
        if (tried > stats.maxAttemptsPerKeyPerInterval) {
          stats.maxAttemptsPerKeyPerInterval = tried
          stats.maxAttemptsKey = key
        }
        if (writeIntervalMs && lastWrite.has(key) && now - lastWrite.get(key) < writeIntervalMs) {
          stats.rateLimited++
          throw new Error('R2 429: emulated rate limit (You are writing to this object key too frequently)')
        }
        const failing = Math.random() < failureShare
        if (failing && Math.random() < 0.5) fail()
        const result = await value.apply(target, args)
        if (result === null) stats.preconditionFailed++
        if (result !== null) {
          lastWrite.set(key, now)
          stats.maxWritesPerKeyPerInterval = Math.max(stats.maxWritesPerKeyPerInterval, track(writes, key, now, window))
        }
        if (failing) fail() // the write landed, the caller sees an error
        return result
      }
    }
  })
}

/** The env with every bucket wrapped. */
export function emulatedEnv (env, stats) {
  const options = emulationFromEnv(env)
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, isBucket(v) ? emulatedBucket(v, options, stats) : v]))
}

export function statsResponse (stats) {
  return new Response(JSON.stringify(stats), { headers: { 'Content-Type': 'application/json' } })
}

// The reference worker (p2pcf@1.3.14 src/worker.js, imported unchanged) with its R2 bucket wrapped
// in a counting proxy, for `make bench`. The reference does most of its writing in waitUntil after
// answering, so counts are kept for the isolate and read with GET /__bench/ops.
import reference from '../../node_modules/p2pcf/src/worker.js'

const counts = { get: 0, head: 0, put: 0, delete: 0, list: 0 }

function isBucket (value) {
  return value && typeof value.get === 'function' && typeof value.put === 'function' &&
    typeof value.delete === 'function' && typeof value.list === 'function'
}

function counting (bucket) {
  return new Proxy(bucket, {
    get (target, prop) {
      const value = target[prop]
      if (typeof value !== 'function') return value
      return (...args) => {
        if (prop in counts) counts[prop]++
        return value.apply(target, args)
      }
    }
  })
}

export default {
  async fetch (request, env, ctx) {
    if (new URL(request.url).pathname === '/__bench/ops') {
      return new Response(JSON.stringify(counts), { headers: { 'Content-Type': 'application/json' } })
    }
    const wrapped = Object.fromEntries(Object.entries(env).map(([k, v]) => [k, isBucket(v) ? counting(v) : v]))
    return reference.fetch(request, wrapped, ctx)
  }
}

// The reference worker (p2pcf@1.3.14 src/worker.js, imported unchanged) behind the same R2
// emulation and counting as ours. It writes in waitUntil after answering, so its failures under
// the emulation are swallowed there, as they would be on Cloudflare.
import reference from '../../node_modules/p2pcf/src/worker.js'
import { emulatedEnv, newStats, statsResponse } from './r2-limits.mjs'

const stats = newStats()

export default {
  async fetch (request, env, ctx) {
    if (new URL(request.url).pathname === '/__r2/stats') return statsResponse(stats)
    return reference.fetch(request, emulatedEnv(env, stats), ctx)
  }
}

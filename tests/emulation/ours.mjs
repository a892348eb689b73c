// Our worker (the built bundle, unchanged) behind the R2 emulation of r2-limits.mjs. Each request
// gets a fresh entrypoint over the wrapped env; the worker keeps no room state in memory anyway.
import { WorkerEntrypoint } from 'cloudflare:workers'
import Ours from '../../build/index.js'
import { emulatedEnv, newStats, statsResponse } from './r2-limits.mjs'

const stats = newStats()

export default class extends WorkerEntrypoint {
  async fetch (request) {
    if (new URL(request.url).pathname === '/__r2/stats') return statsResponse(stats)
    return new Ours(this.ctx, emulatedEnv(this.env, stats)).fetch(request)
  }
}

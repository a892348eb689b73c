// The WebSocket path measured against polling, on our worker (plain `wrangler dev`, Durable Objects
// local): connect time of two client-js peers in Chromium, what a client-js peer sends (so what it
// is billed) per peer-hour on each path, and signal relay latency in a 100-socket room under load.
// Used by `make bench` (tests/bench/run.mjs); `node tests/bench/websocket.mjs` prints it alone.
import WebSocket from 'ws'
import wrtc from '@roamhq/wrtc'
import { P2PCF } from '../../client-js/src/index.js'
import { launchChromium, serveClients, waitFor } from '../lib/browser.mjs'
import { openSocket } from '../lib/sockets.mjs'
import { randomId } from '../lib/p2pcf.mjs'
import { startWorker } from '../lib/workers.mjs'

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
const median = values => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]
const percentile = (values, p) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]
}
/** Cloudflare bills incoming WebSocket messages to a Durable Object at 20 to 1 request. */
const MESSAGES_PER_BILLED_REQUEST = 20
const FREE_REQUESTS_PER_DAY = 100_000

/** Start → first peerconnect of the second of two client-js pages, `trials` times per transport. */
async function connectTimes (url, trials) {
  const browser = await launchChromium()
  const site = await serveClients()
  const times = { websocket: [], polling: [] }
  try {
    for (let trial = 0; trial < trials; trial++) {
      for (const transport of ['websocket', 'polling']) {
        const room = randomId(`bench-${transport}-`)
        const pages = []
        for (const client of ['bench-alice', 'bench-bobby']) {
          const context = await browser.newContext()
          const page = await context.newPage()
          await page.goto(`${site.url}/?room=${room}&client=${client}&lib=/ours.js&worker=${encodeURIComponent(url)}&transport=${transport}`)
          await page.waitForFunction(() => window.started === true, null, { timeout: 20_000 })
          pages.push({ context, page })
        }
        const second = pages[1].page
        await waitFor(() => second.evaluate(() => window.firstConnectAt), 30_000, `${transport} connect`)
          .catch(async err => {
            const state = await Promise.all(pages.map(({ page }) => page.evaluate(() => JSON.stringify({ signalling: window.p2pcf.signalling, peers: [...window.p2pcf.peers.values()].map(p => ({ connected: p.connected })), rows: window.p2pcf._socketRows?.size, events: window.events.slice(-5) }))))
            throw new Error(`${err.message} (trial ${trial}): ${state.join(' | ')}`)
          })
        times[transport].push(await second.evaluate(() => window.firstConnectAt - window.startedAt))
        for (const { context } of pages) await context.close()
      }
    }
  } finally {
    await browser.close()
    site.close()
  }
  return times
}

/**
 * `peers` client-js peers in Node join one room a second apart, then stay `steadyMs`. Counts, per
 * peer, the HTTP requests (polling) or the socket upgrades and frames sent (websocket), during the
 * join (until the mesh is complete) and in the steady state after it.
 */
async function traffic (url, transport, peers, steadyMs) {
  const room = randomId(`bench-${transport}-`)
  const counts = Array.from({ length: peers }, () => ({ requests: 0, upgrades: 0, frames: 0 }))
  const clients = counts.map((count, i) => {
    class CountedSocket extends WebSocket {
      constructor (...args) { super(...args); count.upgrades++ }
      send (...args) { count.frames++; return super.send(...args) }
    }
    const fetchCounted = (...args) => { count.requests++; return fetch(...args) }
    return new P2PCF(`bench-${i}`, room, { workerUrl: url, rtc: wrtc, stunIceServers: [], turnIceServers: [], transport, WebSocket: CountedSocket, fetch: fetchCounted })
  })
  const startedAt = Date.now()
  try {
    for (const client of clients) {
      client.start()
      await sleep(1000)
    }
    await waitFor(() => clients.every(c => c.connectedSessions.length === peers - 1), 90_000, `a ${transport} mesh of ${peers}`)
    const joinMs = Date.now() - startedAt
    const atMesh = counts.map(c => ({ ...c }))
    await sleep(steadyMs)
    const total = key => counts.reduce((sum, c) => sum + c[key], 0)
    const joined = key => atMesh.reduce((sum, c) => sum + c[key], 0)
    const steadyPerHour = key => ((total(key) - joined(key)) / peers) * (3_600_000 / steadyMs)
    return {
      joinMs,
      join: { requests: joined('requests') / peers, upgrades: joined('upgrades') / peers, frames: joined('frames') / peers },
      steadyPerHour: { requests: steadyPerHour('requests'), upgrades: steadyPerHour('upgrades'), frames: steadyPerHour('frames') }
    }
  } finally {
    for (const client of clients) client.destroy()
  }
}

/**
 * Billed requests for a one-hour session: what the join cost plus an hour of the steady state.
 * Polling: every request is a worker request. WebSocket: each upgrade is a worker request and a
 * Durable Object request; each frame a client sends is 1/20 of an object request (`ping`
 * included, though the runtime answers it without waking the object).
 */
function billed (measured) {
  const hour = key => measured.join[key] + measured.steadyPerHour[key]
  const worker = hour('requests') + hour('upgrades')
  const object = hour('upgrades') + hour('frames') / MESSAGES_PER_BILLED_REQUEST
  return { worker, object, total: worker + object, frames: hour('frames') }
}

/** 100 sockets in one room, each signalling a random other every `intervalMs`; relay latency. */
export async function relayUnderLoad (url, { sockets = 100, intervalMs = 200, durationMs = 10_000 } = {}) {
  const room = randomId('bench-relay-')
  const ids = Array.from({ length: sockets }, (_, i) => `relay-${i}`)
  const open = []
  for (let i = 0; i < sockets; i += 10) {
    open.push(...await Promise.all(ids.slice(i, i + 10).map(id => openSocket(url, `/ws/room/${room}?clientId=${id}`))))
  }
  const latencies = []
  for (const socket of open) {
    socket.ws.on('message', data => {
      const frame = JSON.parse(String(data))
      if (frame.type === 'signal') latencies.push(performance.now() - frame.signal.sentAt)
    })
  }
  await sleep(500)
  let sent = 0
  const timers = open.map((socket, i) => setInterval(() => {
    const target = ids[(i + 1 + Math.floor(Math.random() * (sockets - 1))) % sockets]
    socket.send({ type: 'signal', targetId: target, signal: { sentAt: performance.now(), pad: 'x'.repeat(600) } })
    sent++
  }, intervalMs))
  await sleep(durationMs)
  timers.forEach(clearInterval)
  await sleep(1000)
  for (const socket of open) socket.ws.terminate()
  return { sockets, ratePerSecond: (sockets * 1000) / intervalMs, sent, received: latencies.length, p50: percentile(latencies, 50), p99: percentile(latencies, 99) }
}

const fmt = n => (n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(n >= 10 ? 1 : 2))

/** Run everything on a fresh worker; returns { markdown, headlines }. */
export async function benchWebSocket ({ trials = 5, peers = 4, steadyMs = 120_000 } = {}) {
  const worker = await startWorker('ours')
  try {
    process.stdout.write('websocket: connect times…')
    const times = await connectTimes(worker.url, trials)
    process.stdout.write(' traffic over the socket…')
    const overSocket = await traffic(worker.url, 'websocket', peers, steadyMs)
    process.stdout.write(' traffic when polling…')
    const overPolling = await traffic(worker.url, 'polling', peers, steadyMs)
    process.stdout.write(' relay under load…')
    const relay = await relayUnderLoad(worker.url)
    console.log(' done')

    const socketBill = billed(overSocket)
    const pollingBill = billed(overPolling)
    const perDay = bill => ({
      worker: FREE_REQUESTS_PER_DAY / bill.worker,
      object: bill.object > 0 ? FREE_REQUESTS_PER_DAY / bill.object : Infinity
    })
    const socketDay = perDay(socketBill)
    const pollingDay = perDay(pollingBill)
    const capacity = day => Math.min(day.worker, day.object)
    const markdown = [
      '### WebSocket signalling against polling (client-js, same worker, same run)',
      '',
      `Our worker under plain \`wrangler dev\` (Durable Objects local, no R2 emulation: the socket path does not touch R2). Connect time: two client-js pages in Chromium (host candidates), start() to the second page's first \`peerconnect\`, median of ${trials} trials each.`,
      '',
      '| metric | websocket | polling | polling / websocket |',
      '|---|---:|---:|---:|',
      `| start → peerconnect, median (ms) | ${fmt(median(times.websocket))} | ${fmt(median(times.polling))} | ${(median(times.polling) / median(times.websocket)).toFixed(1)}x |`,
      `| start → peerconnect, all trials (ms) | ${times.websocket.join(', ')} | ${times.polling.join(', ')} | |`,
      '',
      `What a client-js peer sends: ${peers} Node peers (@roamhq/wrtc) join one room a second apart; counted per peer until the mesh is complete (the join), then over ${steadyMs / 1000} s of steady state, extrapolated to an hour. Billed requests for a one-hour session = the join + one hour of steady state. Polling: every request is a worker request. WebSocket: an upgrade is one worker request and one Durable Object request; every frame a client sends (\`ping\` every 30 s included, although the runtime answers it without waking the object) counts 1/${MESSAGES_PER_BILLED_REQUEST} of an object request.`,
      '',
      '| per peer | websocket | polling |',
      '|---|---:|---:|',
      `| join: HTTP requests | ${fmt(overSocket.join.requests)} | ${fmt(overPolling.join.requests)} |`,
      `| join: socket upgrades / frames sent | ${fmt(overSocket.join.upgrades)} / ${fmt(overSocket.join.frames)} | — |`,
      `| steady: HTTP requests per hour | ${fmt(overSocket.steadyPerHour.requests)} | ${fmt(overPolling.steadyPerHour.requests)} |`,
      `| steady: frames sent per hour | ${fmt(overSocket.steadyPerHour.frames)} | — |`,
      `| **billed worker requests per peer-hour** | ${fmt(socketBill.worker)} | ${fmt(pollingBill.worker)} |`,
      `| **billed object requests per peer-hour** | ${fmt(socketBill.object)} | 0 |`,
      `| **billed requests per peer-hour, total** | ${fmt(socketBill.total)} | ${fmt(pollingBill.total)} (${(pollingBill.total / socketBill.total).toFixed(0)}x) |`,
      '',
      `Free plan capacity (${FREE_REQUESTS_PER_DAY.toLocaleString('en-US')} worker requests a day; ${FREE_REQUESTS_PER_DAY.toLocaleString('en-US')} Durable Object requests a day, which the socket path alone uses): peer-hours a day = 100,000 / (requests per peer-hour), the smaller of the two limits.`,
      '',
      '| peer-hours per day | websocket | polling |',
      '|---|---:|---:|',
      `| by worker requests | ${fmt(socketDay.worker)} | ${fmt(pollingDay.worker)} |`,
      `| by Durable Object requests | ${fmt(socketDay.object)} | — |`,
      `| **capacity** | **${fmt(capacity(socketDay))}** | **${fmt(capacity(pollingDay))}** |`,
      '',
      `Signal relay in a ${relay.sockets}-socket P2PCF-WS room under load: every socket sends a 600-byte signal to a random other every ${1000 / (relay.ratePerSecond / relay.sockets)} ms (${fmt(relay.ratePerSecond)} frames/s into one object), for 10 s; latency from send to arrival, one process, one clock.`,
      '',
      '| relay latency | value |',
      '|---|---:|',
      `| signals sent / received | ${relay.sent.toLocaleString('en-US')} / ${relay.received.toLocaleString('en-US')} |`,
      `| p50 (ms) | ${fmt(relay.p50)} |`,
      `| p99 (ms) | ${fmt(relay.p99)} |`
    ].join('\n')
    const headlines = [
      `WebSocket vs polling (client-js, Chromium, same worker and run): start → peerconnect median ${fmt(median(times.websocket))} ms vs ${fmt(median(times.polling))} ms.`,
      `Billed requests per peer-hour (one-hour session): ${fmt(socketBill.total)} over the socket (worker ${fmt(socketBill.worker)} + object ${fmt(socketBill.object)}) vs ${fmt(pollingBill.total)} polling; free-plan capacity ${fmt(capacity(socketDay))} vs ${fmt(capacity(pollingDay))} peer-hours a day.`,
      `Signal relay in a ${relay.sockets}-socket room at ${fmt(relay.ratePerSecond)} frames/s: p50 ${fmt(relay.p50)} ms, p99 ${fmt(relay.p99)} ms (${relay.received}/${relay.sent} delivered).`
    ]
    return { markdown, headlines }
  } finally {
    worker.stop()
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { markdown, headlines } = await benchWebSocket({ steadyMs: Number(process.env.BENCH_STEADY_MS || 120_000) })
  console.log(markdown + '\n\n' + headlines.map(h => `- ${h}`).join('\n'))
  process.exit(0)
}

// Browser plumbing for the suites: Debian's Chromium driven by playwright-core, and a tiny static
// server for the test page and the p2pcf@1.3.14 dist bundle (served from node_modules, unchanged).
import { createServer } from 'node:http'
import { readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { chromium } from 'playwright-core'

const ROOT = resolve(import.meta.dirname, '../..')

export const CHROMIUM_FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
  '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream']

export async function launchChromium () {
  return chromium.launch({ executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium', headless: true, args: CHROMIUM_FLAGS })
}

/** Serve `routes` ({ '/path': [contentType, absoluteFile] }); resolves to { url, close }. */
export async function serveFiles (routes) {
  const server = createServer((req, res) => {
    const route = routes[new URL(req.url, 'http://x').pathname]
    if (!route) {
      res.writeHead(404).end('not found')
      return
    }
    res.writeHead(200, { 'Content-Type': route[0], 'Cache-Control': 'no-store' }).end(readFileSync(route[1]))
  })
  await new Promise(r => server.listen(0, '127.0.0.1', r))
  return { url: `http://127.0.0.1:${server.address().port}`, close: () => server.close() }
}

/**
 * The test page (tests/browser/peer.html) with both clients: /p2pcf.js is p2pcf@1.3.14's dist
 * bundle from node_modules, /ours.js is client-js as `make client` bundles it.
 */
export function serveClients () {
  return serveFiles({
    '/': ['text/html', join(ROOT, 'tests/browser/peer.html')],
    '/p2pcf.js': ['text/javascript', join(ROOT, 'node_modules/p2pcf/dist/p2pcf.js')],
    '/ours.js': ['text/javascript', join(ROOT, 'build/client/p2pcf.min.js')],
    '/conference.html': ['text/html', join(ROOT, 'tests/browser/conference.html')],
    '/conference.js': ['text/javascript', join(ROOT, 'build/client/conference.min.js')]
  })
}

/** Poll `check` until it returns a truthy value or `ms` pass. */
export async function waitFor (check, ms, what) {
  const deadline = Date.now() + ms
  let last
  while (Date.now() < deadline) {
    last = await check()
    if (last) return last
    await new Promise(r => setTimeout(r, 100))
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`)
}

/**
 * A pass-through HTTP proxy in front of `target` that records every request with the worker's
 * answer: { method, headers, body (parsed JSON or null), status, answer }. It sees what pages send
 * even while they unload (keepalive requests), which the browser's own instrumentation misses.
 */
export async function recordingProxy (target) {
  const log = []
  const server = createServer(async (req, res) => {
    const chunks = []
    for await (const chunk of req) chunks.push(chunk)
    const raw = Buffer.concat(chunks)
    const headers = Object.fromEntries(Object.entries(req.headers).filter(([k]) => !['host', 'connection', 'content-length'].includes(k)))
    const record = { at: Date.now(), method: req.method, headers, body: null, status: null, answer: null }
    try { record.body = JSON.parse(raw.toString() || 'null') } catch {}
    log.push(record)
    try {
      const answer = await fetch(target + req.url, { method: req.method, headers, body: ['GET', 'HEAD'].includes(req.method) ? undefined : raw })
      const body = Buffer.from(await answer.arrayBuffer())
      record.status = answer.status
      record.answer = body.toString()
      const out = {}
      answer.headers.forEach((v, k) => { if (!['content-length', 'transfer-encoding', 'content-encoding'].includes(k)) out[k] = v })
      res.writeHead(answer.status, out).end(body)
    } catch (err) {
      record.status = 502
      res.writeHead(502).end(String(err))
    }
  })
  await new Promise(r => server.listen(0, '127.0.0.1', r))
  return { url: `http://127.0.0.1:${server.address().port}`, log, close: () => server.close() }
}

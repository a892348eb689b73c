// Browser plumbing for the suites: Debian's Chromium driven by playwright-core, Debian's Firefox
// ESR driven by puppeteer-core over WebDriver BiDi (launchBrowser gives both one small page API),
// and a tiny static server for the test page and the p2pcf@1.3.14 dist bundle (served from
// node_modules, unchanged).
import { createServer } from 'node:http'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { chromium } from 'playwright-core'
import puppeteer from 'puppeteer-core'

const ROOT = resolve(import.meta.dirname, '../..')

export const CHROMIUM_FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
  '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream']

export async function launchChromium () {
  return chromium.launch({ executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium', headless: true, args: CHROMIUM_FLAGS })
}

/**
 * Firefox prefs for the suites: real host candidates (no mDNS .local names, which peers on one
 * machine without an mDNS responder cannot resolve), a fake camera without a permission prompt,
 * and autoplay for the <video> that checks received frames.
 */
export const FIREFOX_PREFS = {
  'media.peerconnection.ice.obfuscate_host_addresses': false,
  'media.navigator.streams.fake': true,
  'media.navigator.permission.disabled': true,
  'media.autoplay.default': 0
}

/**
 * Debian's Firefox ESR under puppeteer-core (WebDriver BiDi). Firefox keeps state under $HOME,
 * which may not be writable (root in a container): it gets a temporary HOME of its own, removed
 * on close, next to the temporary profile puppeteer makes.
 */
export async function launchFirefox () {
  const home = mkdtempSync(join(tmpdir(), 'p2pcf-firefox-home-'))
  try {
    const browser = await puppeteer.launch({
      browser: 'firefox',
      executablePath: process.env.FIREFOX_PATH || '/usr/bin/firefox-esr',
      headless: true,
      extraPrefsFirefox: FIREFOX_PREFS,
      env: { ...process.env, HOME: home, MOZ_CRASHREPORTER_DISABLE: '1' }
    })
    const close = browser.close.bind(browser)
    browser.close = async () => {
      try { await close() } finally { rmSync(home, { recursive: true, force: true }) }
    }
    return browser
  } catch (err) {
    rmSync(home, { recursive: true, force: true })
    throw err
  }
}

/**
 * One API over both browsers: `launchBrowser('chromium' | 'firefox')` resolves to
 * { name, version, newPage(), close() }. newPage() opens a page in a fresh context (its own
 * cookies and storage, as a separate user) and resolves to { browser, goto(url),
 * evaluate(fn, arg), waitForFunction(fn, arg, ms), close() }, where close() drops the context.
 * Uncaught page errors are printed with `label`.
 */
export async function launchBrowser (name) {
  // The two drivers differ in how a context is made and in waitForFunction's argument order.
  const driver = name === 'chromium'
    ? { browser: await launchChromium(), newContext: b => b.newContext(), wait: (page, fn, arg, options) => page.waitForFunction(fn, arg, options) }
    : name === 'firefox'
      ? { browser: await launchFirefox(), newContext: b => b.createBrowserContext(), wait: (page, fn, arg, options) => page.waitForFunction(fn, options, arg) }
      : null
  if (!driver) throw new Error(`unknown browser ${name}`)
  const { browser } = driver
  return {
    name,
    version: await browser.version(),
    close: () => browser.close(),
    async newPage (label = name) {
      const context = await driver.newContext(browser)
      const page = await context.newPage()
      page.on('pageerror', err => console.error(`[${label}] page error:`, err.message))
      return {
        browser: name,
        goto: url => page.goto(url),
        evaluate: (fn, arg) => page.evaluate(fn, arg),
        waitForFunction: (fn, arg, ms) => driver.wait(page, fn, arg, { timeout: ms, polling: 100 }),
        close: () => context.close()
      }
    }
  }
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
 * With `delayMs`, each answer reaches the page that much later (a slow link to the worker).
 */
export async function recordingProxy (target, { delayMs = 0 } = {}) {
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
      if (delayMs) await new Promise(r => setTimeout(r, delayMs))
      res.writeHead(answer.status, out).end(body)
    } catch (err) {
      record.status = 502
      res.writeHead(502).end(String(err))
    }
  })
  await new Promise(r => server.listen(0, '127.0.0.1', r))
  return { url: `http://127.0.0.1:${server.address().port}`, log, close: () => server.close() }
}

// Drop-in, proven in real browsers: the unmodified p2pcf@1.3.14 client in headless Chromium, each
// peer in its own browser context, pointed at our locally running worker.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdirSync } from 'node:fs'
import { launchChromium, recordingProxy, serveClients, waitFor } from '../lib/browser.mjs'
import { randomId, send } from '../lib/p2pcf.mjs'

const OURS = process.env.OURS_URL
let browser
let site
let worker // the recording proxy in front of our worker, which the pages use

before(async () => {
  browser = await launchChromium()
  site = await serveClients()
  worker = await recordingProxy(OURS)
})
after(async () => {
  await browser?.close()
  site?.close()
  worker?.close()
})

/** What the worker was sent by (and answered to) the peer with `sessionId`. */
const requestsOf = sessionId => worker.log.filter(r => r.method === 'POST' && r.body?.d?.[0] === sessionId)

/**
 * Open a peer in its own context, pointed at our worker through the recording proxy (which sees
 * HTTP only; with a `transport` other than polling, the page goes to the worker directly).
 */
async function openPeer (room, client, lib = '/p2pcf.js', transport = null) {
  const context = await browser.newContext()
  const page = await context.newPage()
  page.on('pageerror', err => console.error(`[${client}] page error:`, err.message))
  const openedAt = Date.now()
  const target = transport && transport !== 'polling' ? OURS : worker.url
  const query = `room=${room}&client=${client}&lib=${lib}&worker=${encodeURIComponent(target)}${transport ? `&transport=${transport}` : ''}`
  await page.goto(`${site.url}/?${query}`)
  await page.waitForFunction(() => window.started === true, null, { timeout: 20_000 })
  const sessionId = await page.evaluate(() => window.sessionId)
  return { context, page, sessionId, openedAt, client }
}

const connected = peer => peer.page.evaluate(() => window.connectedPeers())
const roomSessions = async room => (await send(OURS, { body: { r: room } })).json.ps.map(row => row[0])

async function waitConnected (peer, count) {
  return waitFor(async () => (await connected(peer)).length >= count && connected(peer), 30_000, `${peer.client} to connect to ${count} peer(s)`)
}

/** p2pcf 1.3.14's page load → first message in the first test, for client-js's to beat. */
let referenceFirstMessageMs = null

test('two peers connect and exchange short and 100 kB messages both ways, byte-exact', async () => {
  const room = randomId('browser-')
  const [a, b] = [await openPeer(room, 'alice'), await openPeer(room, 'bobby')]
  await waitConnected(a, 1)
  await waitConnected(b, 1)
  const cases = [[1, 11], [2, 100_000]]
  for (const [from, to] of [[a, b], [b, a]]) {
    for (const [seed, length] of cases) await from.page.evaluate(([id, s, l]) => window.sendTo(id, s, l), [to.sessionId, seed, length])
  }
  for (const [from, to] of [[a, b], [b, a]]) {
    const digests = await waitFor(async () => {
      const got = await to.page.evaluate(id => window.receivedDigest(id), from.sessionId)
      return got.length === cases.length && got
    }, 20_000, `${to.client} to receive both messages`)
    const expected = await to.page.evaluate(cs => Promise.all(cs.map(([s, l]) => window.digestOf(s, l))), cases)
    assert.deepEqual(digests, expected, `${from.client} → ${to.client}`)
  }
  const firstMessage = await b.page.evaluate(() => window.firstMessageAt)
  referenceFirstMessageMs = firstMessage - b.openedAt
  console.log(`browser: page load to first message ${referenceFirstMessageMs} ms (second peer; polling at p2pcf defaults)`)
  await a.context.close()
  await b.context.close()
})

test('a four-peer room forms a full mesh', async () => {
  const room = randomId('mesh-')
  const peers = []
  for (const name of ['anna', 'bert', 'cleo', 'dora']) peers.push(await openPeer(room, name))
  for (const peer of peers) {
    const ids = await waitConnected(peer, 3)
    const others = peers.filter(p => p !== peer).map(p => p.sessionId).sort()
    assert.deepEqual([...ids].sort(), others, `${peer.client} is connected to everyone else`)
  }
  for (const peer of peers) await peer.context.close()
})

test('a peer that closes its page leaves: others get peerclose and the worker stops listing it', async () => {
  const room = randomId('leave-')
  const [a, b] = [await openPeer(room, 'alice'), await openPeer(room, 'bobby')]
  await waitConnected(a, 1)
  await waitConnected(b, 1)
  assert.deepEqual((await roomSessions(room)).sort(), [a.sessionId, b.sessionId].sort())
  await b.page.close({ runBeforeUnload: true })
  await waitFor(() => a.page.evaluate(id => window.events.some(e => e.type === 'peerclose' && e.id === id), b.sessionId), 20_000, 'peerclose')
  const remaining = await waitFor(async () => {
    const sessions = await roomSessions(room)
    return !sessions.includes(b.sessionId) && sessions
  }, 5_000, 'the worker to drop the closed peer')
  assert.deepEqual(remaining, [a.sessionId])
  const leave = requestsOf(b.sessionId).find(r => r.headers['x-worker-method'] === 'DELETE')
  assert.ok(leave, 'the closing page sent its leave with X-Worker-Method: DELETE')
  assert.equal(typeof leave.body.dk, 'string')
  // the room can show the leave before its own request answers (another request's fold landed it)
  await waitFor(() => leave.status !== null && leave.status !== undefined, 15_000, 'the leave to be answered')
  assert.deepEqual([leave.status, leave.answer], [200, '{}'], 'the worker accepted the leave')
  await a.context.close()
  await b.context.close()
})

for (const [libA, libB] of [['/p2pcf.js', '/p2pcf.js'], ['/ours.js', '/ours.js'], ['/ours.js', '/p2pcf.js'], ['/p2pcf.js', '/ours.js']]) {
  const label = lib => (lib === '/ours.js' ? 'client-js' : 'p2pcf')
  test(`a media track added after connecting is renegotiated over the DataChannel, not the worker (${label(libA)} → ${label(libB)})`, async () => {
    const room = randomId('media-')
    const [a, b] = [await openPeer(room, 'alice', libA), await openPeer(room, 'bobby', libB)]
    await waitConnected(a, 1)
    await waitConnected(b, 1)
    // once connected, each client publishes once more (its packages are cleared); let that settle
    await new Promise(r => setTimeout(r, 3000))
    const publishes = () => [...requestsOf(a.sessionId), ...requestsOf(b.sessionId)].filter(r => r.body.p).length
    const before = publishes()
    const addedAt = Date.now()
    await a.page.evaluate(id => window.addCamera(id), b.sessionId)
    await waitFor(() => b.page.evaluate(id => window.events.some(e => e.type === 'track' && e.id === id && e.kind === 'video'), a.sessionId), 20_000, 'the video track to arrive')
    console.log(`browser (${label(libA)} → ${label(libB)}): video track arrived ${Date.now() - addedAt} ms after addTrack; publishes during renegotiation: ${publishes() - before}`)
    assert.equal(publishes() - before, 0, 'no publish (d + p) reached the worker during renegotiation')
    await a.context.close()
    await b.context.close()
  })
}

for (const [libA, libB] of [['/p2pcf.js', '/p2pcf.js'], ['/ours.js', '/ours.js'], ['/ours.js', '/p2pcf.js'], ['/p2pcf.js', '/ours.js']]) {
  const label = lib => (lib === '/ours.js' ? 'client-js' : 'p2pcf')
  test(`both sides add a camera the moment they connect, and both videos arrive (${label(libA)} ↔ ${label(libB)})`, async () => {
    const room = randomId('glare-')
    const [a, b] = [await openPeer(room, 'alice', libA), await openPeer(room, 'bobby', libB)]
    await waitConnected(a, 1)
    await waitConnected(b, 1)
    const addedAt = Date.now()
    await Promise.all([a.page.evaluate(id => window.addCamera(id), b.sessionId), b.page.evaluate(id => window.addCamera(id), a.sessionId)])
    const videoFrom = (to, from) => to.page.evaluate(id => window.events.some(e => e.type === 'track' && e.id === id && e.kind === 'video'), from.sessionId)
    await waitFor(async () => (await videoFrom(a, b)) && (await videoFrom(b, a)), 20_000, 'both video tracks to arrive')
    console.log(`browser (${label(libA)} ↔ ${label(libB)}): both cameras arrived ${Date.now() - addedAt} ms after both added them`)
    await new Promise(resolve => setTimeout(resolve, 2000))
    for (const [peer, other] of [[a, b], [b, a]]) {
      assert.deepEqual(await connected(peer), [other.sessionId], `${peer.client} is still connected`)
      const closes = await peer.page.evaluate(() => window.events.filter(e => e.type === 'peerclose'))
      assert.deepEqual(closes, [], `${peer.client} saw no peerclose`)
    }
    await a.context.close()
    await b.context.close()
  })
}

test('a reloaded page rejoins with the same context id and leaves no ghost', async () => {
  const room = randomId('reload-')
  const [a, b] = [await openPeer(room, 'alice'), await openPeer(room, 'bobby')]
  await waitConnected(a, 1)
  const contextBefore = await b.page.evaluate(() => window.contextId)
  await b.page.reload()
  await b.page.waitForFunction(() => window.started === true, null, { timeout: 20_000 })
  const contextAfter = await b.page.evaluate(() => window.contextId)
  const newSession = await b.page.evaluate(() => window.sessionId)
  assert.equal(contextAfter, contextBefore, 'history state kept the context id')
  assert.notEqual(newSession, b.sessionId)
  await waitFor(async () => (await connected(a)).includes(newSession), 30_000, 'the reloaded peer to reconnect')
  const sessions = await roomSessions(room)
  assert.deepEqual(sessions.sort(), [a.sessionId, newSession].sort(), 'exactly the two live sessions, no ghost')
  await a.context.close()
  await b.context.close()
})

test('the demo page at /demo connects two tabs of one browser and chats', async () => {
  const room = randomId('demo-')
  const context = await browser.newContext({ viewport: { width: 900, height: 640 } })
  const tabs = [await context.newPage(), await context.newPage()]
  for (const tab of tabs) {
    tab.on('pageerror', err => console.error('[demo] page error:', err.message))
    await tab.goto(`${OURS}/demo#${room}`)
  }
  for (const tab of tabs) {
    await tab.waitForFunction(() => document.getElementById('status').textContent === 'connected to 1 peer', null, { timeout: 30_000 })
  }
  await tabs[0].fill('#message', 'hello from the first tab')
  await tabs[0].click('#chat-form button')
  await tabs[1].waitForFunction(() => [...document.querySelectorAll('#log li')].some(li => li.textContent.includes('hello from the first tab')), null, { timeout: 10_000 })
  const dir = new URL('../.artifacts/', import.meta.url)
  mkdirSync(dir, { recursive: true })
  for (const [i, tab] of tabs.entries()) await tab.screenshot({ path: new URL(`demo-tab-${i + 1}.png`, dir).pathname })
  console.log(`demo: screenshots of both connected tabs in ${new URL(dir).pathname}`)
  // the status page links to the demo and to the install guide
  const status = await (await fetch(OURS + '/')).text()
  assert.ok(status.includes('href="/demo"') && status.includes('href="/INSTALL.md"'))
  assert.equal((await fetch(OURS + '/INSTALL.md')).status, 200)
  await context.close()
})

test('a mixed room: client-js and p2pcf 1.3.14 peers connect every pair and message both ways', async () => {
  const room = randomId('mixed-')
  const peers = [
    await openPeer(room, 'ours-1', '/ours.js'),
    await openPeer(room, 'orig-1', '/p2pcf.js'),
    await openPeer(room, 'ours-2', '/ours.js'),
    await openPeer(room, 'orig-2', '/p2pcf.js')
  ]
  for (const peer of peers) {
    const ids = await waitConnected(peer, 3)
    assert.deepEqual([...ids].sort(), peers.filter(p => p !== peer).map(p => p.sessionId).sort(), `${peer.client} connected to all`)
  }
  for (const [i, from] of peers.entries()) {
    for (const to of peers) if (to !== from) await from.page.evaluate(([id, s]) => window.sendTo(id, s, 20_000), [to.sessionId, i + 1])
  }
  for (const to of peers) {
    for (const [i, from] of peers.entries()) {
      if (to === from) continue
      const got = await waitFor(async () => {
        const d = await to.page.evaluate(id => window.receivedDigest(id), from.sessionId)
        return d.length === 1 && d
      }, 15_000, `${from.client} → ${to.client}`)
      assert.deepEqual(got, [await to.page.evaluate(s => window.digestOf(s, 20_000), i + 1)], `${from.client} → ${to.client} byte-exact`)
    }
  }
  for (const peer of peers) await peer.context.close()
})

test('client-js in the browser: faster to the first message than p2pcf above, at the same polling rates', async () => {
  const room = randomId('ours-')
  const a = await openPeer(room, 'ours-alice', '/ours.js')
  const b = await openPeer(room, 'ours-bobby', '/ours.js')
  await waitConnected(a, 1)
  await waitConnected(b, 1)
  await a.page.evaluate(id => window.sendTo(id, 9, 100_000), b.sessionId)
  await waitFor(() => b.page.evaluate(() => window.firstMessageAt), 15_000, 'the first message')
  const firstMessage = await b.page.evaluate(() => window.firstMessageAt)
  const ours = firstMessage - b.openedAt
  console.log(`browser: client-js page load to first message ${ours} ms (second peer; p2pcf default polling); p2pcf ${referenceFirstMessageMs ?? '(not run)'} ms`)
  // Measured 5.0 s against p2pcf's 8.3 s. Run alone (a name filter), only the absolute bound holds.
  assert.ok(ours < 10_000, `client-js: first message ${ours} ms after the page opened`)
  if (referenceFirstMessageMs !== null) assert.ok(ours < referenceFirstMessageMs, `client-js ${ours} ms, p2pcf ${referenceFirstMessageMs} ms`)
  await a.context.close()
  await b.context.close()
})

test('client-js over a WebSocket: two browsers connect and message without a single poll', async () => {
  const timings = {}
  for (const transport of ['websocket', 'polling']) {
    const room = randomId(`${transport}-`)
    const a = await openPeer(room, 'sock-alice', '/ours.js', transport)
    const b = await openPeer(room, 'sock-bobby', '/ours.js', transport)
    await waitConnected(a, 1)
    await waitConnected(b, 1)
    const at = await b.page.evaluate(() => ({ start: window.startedAt, connect: window.firstConnectAt, signalling: window.p2pcf.signalling }))
    assert.equal(at.signalling, transport)
    timings[transport] = at.connect - at.start
    await a.page.evaluate(id => window.sendTo(id, 5, 50_000), b.sessionId)
    await b.page.evaluate(id => window.sendTo(id, 6, 11), a.sessionId)
    for (const [from, to, seed, length] of [[a, b, 5, 50_000], [b, a, 6, 11]]) {
      const got = await waitFor(async () => (await to.page.evaluate(id => window.receivedDigest(id), from.sessionId))[0], 10_000, 'the message')
      assert.equal(got, await to.page.evaluate(([s, l]) => window.digestOf(s, l), [seed, length]))
    }
    if (transport === 'websocket') {
      assert.deepEqual([...requestsOf(a.sessionId), ...requestsOf(b.sessionId)], [], 'no poll reached the worker')
    }
    await a.context.close()
    await b.context.close()
  }
  console.log(`browser: client-js start to peerconnect (second peer), websocket ${timings.websocket} ms, polling ${timings.polling} ms (same worker, same run)`)
})

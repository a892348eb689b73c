// Firefox ↔ Chromium: Debian's Firefox ESR (puppeteer-core, WebDriver BiDi) and Debian's Chromium
// (playwright-core), one peer each, in all four pairings of client-js and the unmodified
// p2pcf@1.3.14 client, on our worker. Each pairing connects, exchanges text messages and a
// 100 kB message both ways (byte-exact), then each side in turn adds a video track (fake camera)
// after connecting, which must arrive at the other side and play there (frames decoded).
//
// Each pairing runs twice: Firefox joining first, then second. The first joiner is the offering
// side of the minimal-SDP handshake (B, and the initiator of later renegotiations), the second the
// answering side (A). p2pcf@1.3.14 treats a Firefox B specially (it holds its answer until A's
// package arrives); the last tests are the cases where Firefox's side of the handshake decides.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { launchBrowser, recordingProxy, serveClients, waitFor } from '../lib/browser.mjs'
import { randomId } from '../lib/p2pcf.mjs'

const OURS = process.env.OURS_URL
const LIBS = { 'client-js': '/ours.js', p2pcf: '/p2pcf.js' }
const browsers = {}
let site
const timings = []

before(async () => {
  site = await serveClients()
  browsers.firefox = await launchBrowser('firefox')
  browsers.chromium = await launchBrowser('chromium')
  console.log(`firefox ${browsers.firefox.version}, chromium ${browsers.chromium.version}`)
})
after(async () => {
  for (const browser of Object.values(browsers)) await browser.close()
  site?.close()
  if (timings.length) {
    console.log('connect times, each page\'s p2pcf.start() → its peerconnect (polling at p2pcf defaults), ms:')
    for (const t of timings) console.log(`  ${t.label.padEnd(62)} first joiner ${String(t.first).padStart(5)}, second joiner ${String(t.second).padStart(5)}`)
  }
})

/** A page in `browserName` running `lib` ('client-js' | 'p2pcf'), started in `room` on `worker`. */
async function openPeer (browserName, lib, room, client, worker = OURS) {
  const page = await browsers[browserName].newPage(`${browserName} ${lib}`)
  const query = `room=${room}&client=${client}&lib=${LIBS[lib]}&worker=${encodeURIComponent(worker)}`
  await page.goto(`${site.url}/?${query}`)
  await page.waitForFunction(() => window.started === true, null, 20_000)
  const sessionId = await page.evaluate(() => window.sessionId)
  return { page, sessionId, client, name: `${browserName} ${lib}` }
}

const events = (peer, type) => peer.page.evaluate(t => window.events.filter(e => e.type === t), type)

async function connectPair (first, second, ms = 30_000) {
  for (const [a, b] of [[first, second], [second, first]]) {
    await waitFor(async () => (await a.page.evaluate(() => window.connectedPeers())).includes(b.sessionId), ms, `${a.name} to connect to ${b.name}`)
  }
  return Promise.all([first, second].map(p => p.page.evaluate(() => window.firstConnectAt - window.startedAt)))
}

async function exchangeMessages (a, b) {
  const texts = peer => [`hello from ${peer.name}`, `ünïcödé ✓ ${peer.sessionId}`]
  for (const [from, to] of [[a, b], [b, a]]) {
    for (const text of texts(from)) await from.page.evaluate(([id, t]) => window.sendText(id, t), [to.sessionId, text])
  }
  for (const [from, to] of [[a, b], [b, a]]) {
    const got = await waitFor(async () => {
      const t = await to.page.evaluate(id => window.textsFrom(id), from.sessionId)
      return t.length >= 2 && t
    }, 10_000, `${to.name} to receive text from ${from.name}`)
    assert.deepEqual(got, texts(from), `text ${from.name} → ${to.name}`)
  }
  // 100 kB: chunked by both clients (16 kB chunks), reassembled byte-exact
  const seed = peer => (peer === a ? 101 : 202)
  for (const [from, to] of [[a, b], [b, a]]) await from.page.evaluate(([id, s]) => window.sendTo(id, s, 100_000), [to.sessionId, seed(from)])
  for (const [from, to] of [[a, b], [b, a]]) {
    const digests = await waitFor(async () => {
      const d = await to.page.evaluate(id => window.receivedDigest(id), from.sessionId)
      return d.length >= 3 && d
    }, 15_000, `${to.name} to receive 100 kB from ${from.name}`)
    assert.equal(digests.length, 3, `${from.name} → ${to.name}: two texts and one 100 kB message`)
    assert.equal(digests[2], await to.page.evaluate(s => window.digestOf(s, 100_000), seed(from)), `100 kB ${from.name} → ${to.name} byte-exact`)
  }
}

/** `from` adds a fake camera's track; it must reach `to` as a new track and play there. */
async function sendVideo (from, to) {
  // Count track events: an earlier renegotiation may have announced a track that carries nothing
  // (the transceiver the initiator adds when the other side asks for one).
  const videoTracks = async () => (await events(to, 'track')).filter(e => e.id === from.sessionId && e.kind === 'video').length
  const before = await videoTracks()
  const addedAt = Date.now()
  await from.page.evaluate(id => window.addCamera(id), to.sessionId)
  await waitFor(async () => (await videoTracks()) > before, 10_000, `the video track from ${from.name} to arrive at ${to.name}`)
  const arrived = Date.now() - addedAt
  assert.equal(await to.page.evaluate(id => window.watchVideo(id), from.sessionId), true)
  const played = await waitFor(async () => {
    const p = await to.page.evaluate(() => window.videoProgress())
    return p && p.width > 0 && (p.frames >= 5 || p.time > 0.5) && p
  }, 10_000, `the video from ${from.name} to play at ${to.name}`)
  return `${from.name} → ${to.name}: track ${arrived} ms after addTrack, playing ${played.width}x${played.height}`
}

/** Connect, message both ways, then video each way; `first` joins first (B), `second` (A). */
async function pairing (label, [firstBrowser, firstLib], [secondBrowser, secondLib]) {
  const room = randomId('ff-')
  const first = await openPeer(firstBrowser, firstLib, room, `${firstBrowser}-1`)
  const second = await openPeer(secondBrowser, secondLib, room, `${secondBrowser}-2`)
  try {
    const [firstMs, secondMs] = await connectPair(first, second)
    timings.push({ label, first: firstMs, second: secondMs })
    await exchangeMessages(first, second)
    const video = [await sendVideo(second, first), await sendVideo(first, second)]
    console.log(`${label}: ${video.join('; ')}`)
    for (const peer of [first, second]) {
      const errors = await events(peer, 'error')
      assert.deepEqual(errors, [], `${peer.name}: no errors`)
    }
  } finally {
    await first.page.close()
    await second.page.close()
  }
}

for (const [firefoxLib, chromiumLib] of [['client-js', 'client-js'], ['client-js', 'p2pcf'], ['p2pcf', 'client-js'], ['p2pcf', 'p2pcf']]) {
  for (const firefoxFirst of [true, false]) {
    const fox = ['firefox', firefoxLib]
    const chrome = ['chromium', chromiumLib]
    const label = `firefox ${firefoxLib} ↔ chromium ${chromiumLib}, ${firefoxFirst ? 'firefox' : 'chromium'} joins first`
    test(`${label}: connect, text and 100 kB both ways, a video track added after connecting each way`, () =>
      firefoxFirst ? pairing(label, fox, chrome) : pairing(label, chrome, fox))
  }
}

// Firefox on both sides: a client-js A must answer renegotiations with the ICE credentials it was
// given in the handshake, or the Firefox B rejects the answer as an ICE restart it did not ask for.
for (const firstLib of ['client-js', 'p2pcf']) {
  const label = `firefox ${firstLib} ↔ firefox client-js, client-js joins second`
  test(`${label}: connect, messages, a video track added after connecting each way`, () =>
    pairing(label, ['firefox', firstLib], ['firefox', 'client-js']))
}

// Firefox fails ICE 5 s after the remote description when no candidate pair has worked: a B that
// applies its answer at once fails whenever A's checks come later than that. Here A's link to the
// worker is slow (each answer 3 s late), so A's checks come about 7 s after B's answer.
test('firefox client-js (first, B) ↔ chromium client-js whose worker answers come 3 s late: connects on the first attempt', async () => {
    const slow = await recordingProxy(OURS, { delayMs: 3000 })
    const room = randomId('ff-late-')
    const first = await openPeer('firefox', 'client-js', room, 'firefox-1')
    const second = await openPeer('chromium', 'client-js', room, 'chromium-2', slow.url)
    try {
      const [firstMs, secondMs] = await connectPair(first, second, 30_000)
      timings.push({ label: 'firefox client-js B ↔ chromium client-js A, A 3 s late', first: firstMs, second: secondMs })
      assert.deepEqual(await events(first, 'peerfailed'), [], 'the Firefox side never gave up on an attempt')
    } finally {
      await first.page.close()
      await second.page.close()
      slow.close()
    }
  })

// client-js/conference in Chromium with a fake camera: one Sender, three Receivers, through our
// worker's topic pub/sub (a page each) and through MemoryDriver (one page), checking that video
// frames are decoded and advance, data both ways, state sync, stop(), late and restarted senders,
// and verify(); BroadcastChannelDriver between two tabs; and the demo page at /demo/conference.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { launchChromium, serveClients, waitFor } from '../lib/browser.mjs'
import { randomId } from '../lib/p2pcf.mjs'

const OURS = process.env.OURS_URL
let browser
let site
before(async () => {
  browser = await launchChromium()
  site = await serveClients()
})
after(async () => {
  await browser?.close()
  site?.close()
})

async function openPage () {
  const context = await browser.newContext()
  const page = await context.newPage()
  page.on('pageerror', err => console.error('page error:', err.message))
  await page.goto(`${site.url}/conference.html`)
  await page.waitForFunction(() => window.ready === true)
  return page
}

/** A peer on a page: its index there, and helpers to read what it saw. */
function handle (page, index) {
  return {
    page,
    index,
    events: type => page.evaluate(([i, t]) => window.eventsOf(i).filter(e => !t || e.type === t), [index, type]),
    frames: () => page.evaluate(i => window.framesOf(i), index),
    id: () => page.evaluate(i => window.idOf(i), index),
    call: (method, ...args) => page.evaluate(([i, m, a]) => window.call(i, m, ...a), [index, method, args])
  }
}

const startReceiver = async (page, options) => handle(page, await page.evaluate(o => window.startReceiver(o), options))
const startSender = async (page, options) => handle(page, await page.evaluate(o => window.startSender(o), options))

async function waitEvents (peer, type, count, ms = 20_000) {
  return waitFor(async () => { const got = await peer.events(type); return got.length >= count && got }, ms, `${count} ${type} event(s)`)
}

/** Every receiver's video from `senderId` decodes frames, and they keep coming. */
async function assertFramesAdvance (receivers, senderId) {
  const before = await Promise.all(receivers.map(r => waitFor(async () => (await r.frames())[senderId] > 2 && r.frames(), 15_000, 'decoded frames')))
  await new Promise(resolve => setTimeout(resolve, 1000))
  const later = await Promise.all(receivers.map(r => r.frames()))
  later.forEach((frames, i) => assert.ok(frames[senderId] > before[i][senderId] + 5, `receiver ${i}: frames advance (${before[i][senderId]} → ${frames[senderId]})`))
}

test('pub/sub driver: one sender and three receivers in four pages get the camera, data, sync and stop', async () => {
  const room = randomId('conf-')
  const driver = { kind: 'pubsub', workerUrl: OURS, namespace: randomId('ns-') }
  const receivers = []
  for (let i = 0; i < 3; i++) receivers.push(await startReceiver(await openPage(), { driver, room, pingInterval: 1 }))
  // The receivers were waiting before the sender started: its announcement brings them in.
  const sender = await startSender(await openPage(), { driver, room, camera: true, dataChannel: true, state: { title: 'lecture' } })
  const senderId = await sender.id()
  const streams = await Promise.all(receivers.map(r => waitEvents(r, 'stream', 1)))
  const startedAt = await sender.page.evaluate(i => window.peers[i].startedAt, sender.index)
  const toStream = streams.map(([event]) => event.at - startedAt)
  console.log(`conference (pub/sub): sender start() to stream at 3 receivers: ${toStream.join(', ')} ms`)
  for (const [event] of streams) assert.deepEqual([event.id, event.state], [senderId, { title: 'lecture' }])
  await assertFramesAdvance(receivers, senderId)

  await Promise.all(receivers.map(r => waitEvents(r, 'channel', 1)))
  await waitFor(async () => (await sender.events('connect')).length === 3, 10_000, 'three connects')
  await sender.call('send', 'hello viewers')
  for (const r of receivers) assert.equal((await waitEvents(r, 'message', 1))[0].message, 'hello viewers')
  for (const [i, r] of receivers.entries()) await r.page.evaluate(([index, id, text]) => window.sendOnChannel(index, id, text), [r.index, senderId, `hi from ${i}`])
  const back = await waitEvents(sender, 'message', 3)
  assert.deepEqual(back.map(e => e.message).sort(), ['hi from 0', 'hi from 1', 'hi from 2'])

  await sender.call('sync', { slide: 7 })
  for (const r of receivers) assert.deepEqual((await waitEvents(r, 'sync', 1))[0].state, { title: 'lecture', slide: 7 })

  await sender.call('stop')
  for (const r of receivers) assert.equal((await waitEvents(r, 'dispose', 1))[0].id, senderId)
  assert.equal((await sender.events('dispose')).length, 3)
  for (const r of [sender, ...receivers]) await r.page.context().close()
})

test('MemoryDriver: three receivers in one page; a restarted sender is found again by pinging; verify keeps one out', async () => {
  const page = await openPage()
  const room = 'memory-room'
  const driver = { kind: 'memory' }
  // The sender's announcements are lost, so receivers can only find it by pinging (every 1 s).
  const quiet = { kind: 'memory', dropAnnouncements: true }
  const sender = await startSender(page, { driver: quiet, room, camera: true, verifySecret: 'let me in', state: { n: 1 } })
  const receivers = []
  for (let i = 0; i < 3; i++) receivers.push(await startReceiver(page, { driver, room, credentials: 'let me in', pingInterval: 1 }))
  const outsider = await startReceiver(page, { driver, room, credentials: 'wrong', pingInterval: 1 })
  const firstId = await sender.id()
  await Promise.all(receivers.map(r => waitEvents(r, 'stream', 1)))
  await assertFramesAdvance(receivers, firstId)
  assert.match((await waitEvents(outsider, 'error', 1))[0].error, /refused/)
  assert.deepEqual(await outsider.events('stream'), [])

  await sender.call('stop')
  await Promise.all(receivers.map(r => waitEvents(r, 'dispose', 1)))
  // Restart: start() again on the same Sender (a new id), with a new camera stream.
  const restarted = await page.evaluate(async i => {
    const entry = window.peers[i]
    const stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: false })
    entry.peer.start({ room: 'memory-room', stream, state: { n: 2 } })
    return entry.peer.id
  }, sender.index)
  assert.notEqual(restarted, firstId)
  for (const r of receivers) {
    const streams = await waitEvents(r, 'stream', 2, 15_000)
    assert.deepEqual([streams[1].id, streams[1].state], [restarted, { n: 2 }])
  }
  await assertFramesAdvance(receivers, restarted)
  assert.deepEqual(await outsider.events('stream'), [], 'still out')
  await page.context().close()
})

test('BroadcastChannelDriver: a sender tab and a receiver tab of one origin, no server', async () => {
  const context = await browser.newContext()
  const open = async () => {
    const page = await context.newPage()
    await page.goto(`${site.url}/conference.html`)
    await page.waitForFunction(() => window.ready === true)
    return page
  }
  const driver = { kind: 'broadcast', namespace: randomId('tabs-') }
  const receiver = await startReceiver(await open(), { driver, room: 'tabs' })
  const sender = await startSender(await open(), { driver, room: 'tabs', camera: true, dataChannel: true })
  const senderId = await sender.id()
  assert.equal((await waitEvents(receiver, 'stream', 1))[0].id, senderId)
  await assertFramesAdvance([receiver], senderId)
  await waitEvents(receiver, 'channel', 1)
  await waitFor(async () => (await sender.events('connect')).length === 1, 10_000, 'the connect')
  await sender.call('send', 'across tabs')
  assert.equal((await waitEvents(receiver, 'message', 1))[0].message, 'across tabs')
  await context.close()
})

test('the demo at /demo/conference: one tab broadcasts its camera, another watches and chats', async () => {
  const context = await browser.newContext()
  const room = randomId('demo-')
  const host = await context.newPage()
  await host.goto(`${OURS}/demo/conference?room=${room}`)
  await host.click('#broadcast')
  const viewer = await context.newPage()
  await viewer.goto(`${OURS}/demo/conference?room=${room}`)
  await viewer.click('#watch')
  await viewer.waitForFunction(() => document.getElementById('status').textContent === 'live', null, { timeout: 20_000 })
  await viewer.waitForFunction(() => document.getElementById('video').videoWidth > 0, null, { timeout: 10_000 })
  await host.waitForFunction(() => document.getElementById('status').textContent === '1 watching', null, { timeout: 10_000 })
  await viewer.fill('#text', 'nice stream')
  await viewer.press('#text', 'Enter')
  await host.waitForFunction(() => window.demo.log.includes('viewer: nice stream'), null, { timeout: 10_000 })
  await viewer.waitForFunction(() => window.demo.log.includes('viewer: nice stream'), null, { timeout: 10_000 })
  await context.close()
})

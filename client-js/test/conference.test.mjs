// Sender and Receiver in Node over MemoryDriver, data only (@roamhq/wrtc), and what bad driver
// input does to them.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import wrtc from '@roamhq/wrtc'
import { Sender, Receiver, MemoryDriver } from '../src/conference/index.js'

const options = { iceServers: [], rtc: wrtc }

/** Resolves with the detail of the next `type` event of `target` (rejects after `ms`). */
function next (target, type, ms = 10_000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${type} event within ${ms} ms`)), ms)
    target.addEventListener(type, event => { clearTimeout(timer); resolve(event.detail) }, { once: true })
  })
}

const opened = channel => new Promise(resolve => channel.readyState === 'open' ? resolve() : channel.addEventListener('open', resolve, { once: true }))

test('a data-only sender and receiver connect through MemoryDriver and talk both ways', async () => {
  const driver = new MemoryDriver()
  const sender = new Sender({ driver, ...options })
  const receiver = new Receiver({ driver, ...options })
  sender.start({ room: 'node', state: { topic: 'hello' } })
  const channelOpen = next(receiver, 'channel')
  const connected = next(sender, 'connect')
  receiver.start({ room: 'node' })
  const { id, channel, state } = await channelOpen
  assert.equal(id, sender.id)
  assert.deepEqual(state, { topic: 'hello' })
  assert.equal((await connected).id, receiver.id)
  await opened(channel)

  const message = next(receiver, 'message')
  sender.send('to the receiver')
  assert.equal((await message).message, 'to the receiver')
  const back = next(sender, 'message')
  channel.send('to the sender')
  assert.deepEqual(await back, { id: receiver.id, message: 'to the sender' })

  const synced = next(receiver, 'sync')
  sender.sync({ slide: 2 })
  assert.deepEqual((await synced).state, { topic: 'hello', slide: 2 })

  const disposed = next(receiver, 'dispose')
  sender.stop()
  assert.equal((await disposed).id, id)
  receiver.stop()
})

test('bad driver input becomes error events and crashes nothing', async () => {
  const driver = new MemoryDriver()
  const sender = new Sender({ driver, ...options })
  const receiver = new Receiver({ driver, ...options })
  const errors = { sender: [], receiver: [] }
  sender.addEventListener('error', e => errors.sender.push(e.detail.error.message))
  receiver.addEventListener('error', e => errors.receiver.push(e.detail.error.message))
  sender.start({ room: 'bad' })
  receiver.start({ room: 'bad' })
  await next(sender, 'connect').catch(() => {})
  const toSender = ['sender', 'bad', sender.id]
  const toReceiver = ['receiver', 'bad', receiver.id]
  driver.emit(toSender, null)
  driver.emit(toSender, { type: 'answer' })
  driver.emit(toSender, { type: 'dance', id: 'x' })
  driver.emit(toSender, { type: 'answer', id: 'nobody', answer: { type: 'answer', sdp: 'v=0' } })
  driver.emit(toSender, { type: 'candidate', id: receiver.id, candidate: 42 })
  driver.emit(toReceiver, { type: 'offer', id: 'fake-sender', offer: { type: 'offer', sdp: 'not sdp' } })
  driver.emit(toReceiver, { type: 'offer', id: 'fake-sender-2', offer: 'nope' })
  driver.emit(toReceiver, { type: 'candidate', id: 'nobody', candidate: { candidate: '' } })
  driver.emit(toReceiver, { type: 'tea', id: 'x' })
  await new Promise(resolve => setTimeout(resolve, 500))
  assert.deepEqual(errors.sender, [
    'a signalling message without an id',
    'a signalling message without an id',
    'unknown message type: dance',
    'a answer from nobody, which has no connection here',
    'a malformed candidate'
  ])
  assert.equal(errors.receiver.length, 4, errors.receiver.join('; '))
  assert.match(errors.receiver.join(';'), /malformed offer/)
  assert.equal(sender.links.size, 1, 'the real receiver is still connected')
  sender.stop()
  receiver.stop()
})

test('verify returning false keeps a receiver out, with an error event on both sides', async () => {
  const driver = new MemoryDriver()
  const sender = new Sender({ driver, ...options, verify: (id, credentials) => credentials === 'secret' })
  sender.start({ room: 'guarded' })
  const outsider = new Receiver({ driver, ...options })
  const refused = next(outsider, 'error')
  outsider.start({ room: 'guarded', credentials: 'guess' })
  assert.match((await refused).error.message, /refused: not allowed/)
  const insider = new Receiver({ driver, ...options })
  const channel = next(insider, 'channel')
  insider.start({ room: 'guarded', credentials: 'secret' })
  await opened((await channel).channel) // closing a connection of @roamhq/wrtc before its channel opens can crash the process at exit
  assert.deepEqual([...sender.links.keys()], [insider.id])
  const disposed = next(insider, 'dispose')
  sender.stop()
  await disposed
  outsider.stop()
  insider.stop()
})

test('queueSize keeps the newest messages for a receiver whose channel is not open yet', () => {
  const sender = new Sender({ driver: new MemoryDriver(), queueSize: 3, ...options })
  sender.links.set('r1', { channel: null }) // a receiver mid-handshake
  for (let i = 1; i <= 5; i++) sender.send(`m${i}`, 'r1')
  assert.deepEqual(sender._queues.get('r1'), ['m3', 'm4', 'm5'])
})

import { test, mock } from 'node:test'
import assert from 'node:assert/strict'
import { WorkerSocket } from '../src/socket.js'

/** A stand-in WebSocket the test drives: `join()` delivers the room's peers frame, `drop()` closes. */
class FakeSocket {
  static made = []
  constructor (url) {
    this.url = url
    this.readyState = 0
    this.sent = []
    FakeSocket.made.push(this)
  }

  open () { this.readyState = 1 }
  join (peers = []) { this.open(); this.onmessage({ data: JSON.stringify({ type: 'peers', peers, yourId: 'me' }) }) }
  send (text) { this.sent.push(text) }
  drop (code = 1006) { this.readyState = 3; this.onclose({ code }) }
  close (code = 1005) { if (this.readyState !== 3) this.drop(code) }
}

function roomSocket ({ fallback = false } = {}) {
  FakeSocket.made = []
  const frames = []
  let unavailable = 0
  const socket = new WorkerSocket({
    url: 'ws://worker/ws/room/abcd?clientId=me',
    WebSocket: FakeSocket,
    onFrame: frame => frames.push(frame),
    onUnavailable: fallback ? () => unavailable++ : null
  })
  return { socket, frames, unavailable: () => unavailable }
}

test('a socket that was in the room reconnects with growing, capped backoff', t => {
  t.mock.timers.enable({ apis: ['setTimeout', 'setInterval'] })
  mock.method(Math, 'random', () => 1) // no jitter: the longest wait of each step
  const { socket, frames } = roomSocket({ fallback: true })
  FakeSocket.made[0].join(['x'])
  assert.deepEqual(frames, [{ type: 'peers', peers: ['x'], yourId: 'me' }])
  const waits = []
  for (let i = 0; i < 8; i++) {
    FakeSocket.made.at(-1).drop()
    const before = FakeSocket.made.length
    let waited = 0
    while (FakeSocket.made.length === before) { t.mock.timers.tick(100); waited += 100 }
    waits.push(waited)
  }
  assert.deepEqual(waits, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000])
  FakeSocket.made.at(-1).join()
  FakeSocket.made.at(-1).drop()
  t.mock.timers.tick(500)
  assert.equal(FakeSocket.made.length, 10, 'a successful join resets the backoff')
  socket.close()
  t.mock.timers.tick(60_000)
  assert.equal(FakeSocket.made.length, 10, 'no reconnect after close()')
  Math.random.mock.restore()
})

test('a socket that never reaches the room reports unavailable once (auto falls back), or keeps retrying', t => {
  t.mock.timers.enable({ apis: ['setTimeout', 'setInterval'] })
  const auto = roomSocket({ fallback: true })
  for (let i = 0; i < 3; i++) {
    FakeSocket.made.at(-1).drop()
    t.mock.timers.tick(5000)
  }
  t.mock.timers.tick(60_000)
  assert.equal(auto.unavailable(), 1, 'after three tries')
  assert.equal(FakeSocket.made.length, 3)

  const forced = roomSocket({ fallback: false })
  FakeSocket.made[0].open() // upgraded, but no peers frame: not our worker's room
  t.mock.timers.tick(5000)
  assert.equal(FakeSocket.made[0].readyState, 3, 'closed after the join timeout')
  t.mock.timers.tick(1000)
  assert.equal(FakeSocket.made.length, 2, "transport 'websocket' tries again")
  forced.socket.close()
})

test('a socket replaced by another with our id (4000) reports it and stops', t => {
  t.mock.timers.enable({ apis: ['setTimeout', 'setInterval'] })
  FakeSocket.made = []
  let replaced = 0
  const socket = new WorkerSocket({ url: 'ws://x', WebSocket: FakeSocket, onFrame: () => {}, onReplaced: () => replaced++ })
  FakeSocket.made[0].join()
  FakeSocket.made[0].drop(4000)
  t.mock.timers.tick(60_000)
  assert.deepEqual([replaced, FakeSocket.made.length], [1, 1])
  socket.close()
})

test('without a join frame (pub/sub), open is joined: no join timeout, onOpen on every connection', t => {
  t.mock.timers.enable({ apis: ['setTimeout', 'setInterval'] })
  FakeSocket.made = []
  let opens = 0
  const socket = new WorkerSocket({ url: 'ws://x', WebSocket: FakeSocket, onFrame: () => {}, joinedBy: null, onOpen: () => opens++ })
  FakeSocket.made[0].open()
  FakeSocket.made[0].onopen()
  t.mock.timers.tick(10_000)
  assert.equal(FakeSocket.made[0].readyState, 1, 'not closed for want of a peers frame')
  FakeSocket.made[0].drop()
  t.mock.timers.tick(1000)
  FakeSocket.made[1].open()
  FakeSocket.made[1].onopen()
  assert.equal(opens, 2)
  socket.close()
})

test('pings every 30 s while open; sends only while open', t => {
  t.mock.timers.enable({ apis: ['setTimeout', 'setInterval'] })
  const { socket } = roomSocket()
  assert.equal(socket.send({ type: 'broadcast', data: 1 }), false, 'not open yet')
  const ws = FakeSocket.made[0]
  ws.join()
  assert.equal(socket.send({ type: 'broadcast', data: 1 }), true)
  t.mock.timers.tick(60_000)
  assert.deepEqual(ws.sent, ['{"type":"broadcast","data":1}', 'ping', 'ping'])
  ws.onmessage({ data: 'pong' }) // not JSON: ignored
  socket.close()
})

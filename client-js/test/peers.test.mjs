// The peer table's events and the B side's answer, over a scripted RTCPeerConnection: what users
// see when a connection fails, closes inside their own handler, or gets A's package mid-answer.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { P2PCF } from '../src/p2pcf.js'

const FINGERPRINT = Array.from({ length: 32 }, () => 'AB').join(':')

/** Just enough RTCPeerConnection to drive P2PCF's peer table: records descriptions it is given. */
class ScriptedConnection {
  static all = []
  constructor () {
    this.connectionState = 'new'
    this.signalingState = 'stable'
    this.remoteAnswers = 0
    this.answerDelayMs = 0
    ScriptedConnection.all.push(this)
  }

  createDataChannel () { return (this.channel = { close () {}, send () {} }) }
  async createOffer () { return { type: 'offer', sdp: `v=0\r\na=ice-ufrag:abcd\r\na=ice-pwd:${'p'.repeat(24)}\r\na=fingerprint:sha-256 ${FINGERPRINT}\r\n` } }
  async setLocalDescription () { this.signalingState = 'have-local-offer' }
  async setRemoteDescription ({ type }) {
    if (type !== 'answer') return
    this.remoteAnswers++
    await new Promise(resolve => setTimeout(resolve, this.answerDelayMs))
    if (this.signalingState !== 'have-local-offer') throw new Error('InvalidStateError: a second answer')
    this.signalingState = 'stable'
  }

  async addIceCandidate () {}
  getSenders () { return [] }
  close () { this.connectionState = 'closed' }
}

function client () {
  ScriptedConnection.all = []
  const p2pcf = new P2PCF('client-1', 'room-1', { rtc: { RTCPeerConnection: ScriptedConnection }, fetch: async () => { throw new Error('offline') } })
  const events = []
  for (const type of ['peerconnect', 'peerclose', 'peerfailed', 'error']) p2pcf.on(type, (peer, reason) => events.push([type, peer?.id ?? peer?.message, reason]))
  return { p2pcf, events }
}

test('an ICE or DTLS failure before connecting is a peerfailed, with a reason', () => {
  const { p2pcf, events } = client()
  const peer = p2pcf._newPeer('session-b', 'bob', true, [])
  peer._pc.connectionState = 'failed'
  peer._pc.onconnectionstatechange()
  assert.deepEqual(events, [['peerfailed', 'session-b', 'the connection failed (ICE or DTLS)']])
  assert.equal(p2pcf.peers.size, 0)
  p2pcf.destroy()
})

test('a connected peer that fails is a peerclose, and a dropped one is not reported twice', () => {
  const { p2pcf, events } = client()
  const connected = p2pcf._newPeer('session-b', 'bob', true, [])
  connected._channel.onopen()
  connected._pc.connectionState = 'failed'
  connected._pc.onconnectionstatechange()
  const dropped = p2pcf._newPeer('session-c', 'cleo', true, [])
  p2pcf._drop(dropped, 'did not connect in time')
  assert.deepEqual(events, [['peerconnect', 'session-b', undefined], ['peerclose', 'session-b', undefined], ['peerfailed', 'session-c', 'did not connect in time']])
  p2pcf.destroy()
})

test('a peer destroyed inside a peerconnect handler still gets its peerclose', () => {
  const { p2pcf, events } = client()
  p2pcf.on('peerconnect', peer => peer.destroy())
  const peer = p2pcf._newPeer('session-b', 'bob', true, [])
  peer._channel.onopen()
  assert.deepEqual(events, [['peerconnect', 'session-b', undefined], ['peerclose', 'session-b', undefined]])
  p2pcf.destroy()
})

test('A\'s package arriving while B applies its own answer does not apply a second one', async () => {
  const { p2pcf, events } = client()
  const connecting = p2pcf._connectAsB('session-a', 'alice', [], 'q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=', [])
  const peer = p2pcf.peers.get('session-a')
  peer._pc.answerDelayMs = 50
  while (!peer.handshake.answerWith) await new Promise(resolve => setImmediate(resolve))
  await new Promise(resolve => setTimeout(resolve, 10)) // B's own answer is being applied
  await p2pcf._finishAsB(peer, ['session-b', 'session-a', null, null, 'q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=', peer.handshake.theirUfrag, null, Date.now(), []])
  await connecting
  assert.equal(peer._pc.remoteAnswers, 1)
  assert.deepEqual(events, [], 'no error, no peerfailed')
  assert.equal(p2pcf.peers.get('session-a'), peer)
  p2pcf.destroy()
})

test('sdpTransform reaches every local description and the proprietary constraints reach the connection, as in p2pcf', async () => {
  const constraints = { optional: [{ googDscp: true }] }
  const applied = []
  class Recording extends ScriptedConnection {
    constructor (config, second) { super(); this.second = second }
    async setLocalDescription (description) { applied.push(description); return super.setLocalDescription(description) }
  }
  const p2pcf = new P2PCF('client-1', 'room-1', { rtc: { RTCPeerConnection: Recording }, sdpTransform: sdp => sdp + 'a=x-transformed\r\n', rtcPeerConnectionProprietaryConstraints: constraints })
  await p2pcf._connectAsB('session-a', 'alice', [], null, [])
  const peer = p2pcf.peers.get('session-a')
  assert.equal(peer._pc.second, constraints)
  assert.ok(applied.length === 1 && applied[0].sdp.endsWith('a=x-transformed\r\n'), 'the offer went through sdpTransform')
  assert.ok(p2pcf.packages.length === 0 && peer.handshake.answerWith, 'B waits for A with the transformed offer applied')
  p2pcf.destroy()
})

test('two peers\' chunked messages with the same message id, interleaved, each arrive whole (p2pcf keys chunks by id alone)', async () => {
  const { chunk } = await import('../src/chunks.js')
  const { p2pcf } = client()
  const [bob, cleo] = [p2pcf._newPeer('session-b', 'bob', true, []), p2pcf._newPeer('session-c', 'cleo', true, [])]
  const received = []
  p2pcf.on('msg', (peer, data) => received.push([peer.id, new Uint8Array(data)]))
  const fromBob = new Uint8Array(40_000).fill(1)
  const fromCleo = new Uint8Array(40_000).fill(2)
  const [partsB, partsC] = [[...chunk(fromBob, 7)], [...chunk(fromCleo, 7)]] // the same id: 1 in 65,536
  for (let i = 0; i < partsB.length; i++) {
    p2pcf._receive(bob, partsB[i])
    p2pcf._receive(cleo, partsC[i])
  }
  assert.deepEqual(received, [['session-b', fromBob], ['session-c', fromCleo]])
  p2pcf.destroy()
})

test('destroy() is no failure: an unconnected peer gets no peerfailed, a connected one its peerclose', () => {
  const { p2pcf, events } = client()
  const up = p2pcf._newPeer('session-b', 'bob', true, [])
  up._channel.onopen()
  p2pcf._newPeer('session-c', 'cleo', true, [])
  p2pcf.destroy()
  assert.deepEqual(events, [['peerconnect', 'session-b', undefined], ['peerclose', 'session-b', undefined]])
})

test('a handler that destroys the client mid-reconcile stops the remaining steps', () => {
  const { p2pcf } = client()
  p2pcf._network = { isSymmetric: false, reflexiveIps: [], fingerprint: 'fp' }
  p2pcf.startedAtTimestamp = 2_000
  // We answered an offer of this earlier starter; it offers again: drop (peerfailed), then answer.
  p2pcf._newPeer('earlier', 'earlier-client', false, []).handshake.offerUfrag = 'uf-1'
  p2pcf.on('peerfailed', () => p2pcf.destroy())
  const before = ScriptedConnection.all.length
  const retry = ['me', 'earlier', 'uf-2', 'pwd', 'q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=', 'mine', 'mypwd', 1, []]
  p2pcf._handle([['earlier', 'earlier-client', false, 'fp', 1_000, [], 5]], [retry])
  assert.equal(ScriptedConnection.all.length, before, 'no connection opened on a destroyed client')
})

test('over the room socket, a pair whose ICE fails is tried again', () => {
  const { p2pcf, events } = client()
  p2pcf._socket = { send () {}, close () {} }
  p2pcf._processed.set('session-b', 5)
  const peer = p2pcf._newPeer('session-b', 'bob', true, [])
  const timers = p2pcf._timers.size
  peer._pc.connectionState = 'failed'
  peer._pc.onconnectionstatechange()
  assert.deepEqual(events, [['peerfailed', 'session-b', 'the connection failed (ICE or DTLS)']])
  assert.equal(p2pcf._processed.has('session-b'), false, 'the row will be acted on again')
  assert.equal(p2pcf._timers.size, timers + 1, 'a retry is scheduled')
  p2pcf.destroy()
})

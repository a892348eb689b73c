// Renegotiation after the DataChannel opens, as simple-peer (and so p2pcf 1.3.14) does it, over a
// scripted RTCPeerConnection: only the initiator offers, the other side asks, requests made while
// an offer is out wait for it, and a track the offer had no place for gets a transceiver request.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Peer } from '../src/peer.js'

class Scripted {
  constructor () {
    this.signalingState = 'stable'
    this.transceivers = []
    this.added = []
  }

  _state (state) { this.signalingState = state; this.onsignalingstatechange?.() }
  createDataChannel () { return { close () {}, send () {} } }
  async createOffer () { return { type: 'offer', sdp: 'v=0\r\na=ice-ufrag:mine\r\na=ice-pwd:minepwd\r\n' } }
  async createAnswer () { return { type: 'answer', sdp: 'v=0\r\na=ice-ufrag:mine\r\na=ice-pwd:minepwd\r\n' } }
  async setLocalDescription ({ type }) { this._state(type === 'offer' ? 'have-local-offer' : 'stable') }
  async setRemoteDescription ({ type }) { this._state(type === 'offer' ? 'have-remote-offer' : 'stable') }
  getTransceivers () { return this.transceivers }
  addTransceiver (kind, init) { this.added.push([kind, init]) }
  close () {}
}

const tick = () => new Promise(resolve => setTimeout(resolve, 5))

function connectedPeer (initiator) {
  const peer = new Peer({ id: 'remote', clientId: 'c', initiator, rtc: { RTCPeerConnection: Scripted }, config: {} })
  if (!initiator) peer._pc.ondatachannel({ channel: { close () {}, send () {} } })
  peer._channel.onopen()
  const signals = []
  peer.on('signal', signal => signals.push(signal))
  return { peer, signals }
}

test('the initiator offers once per batch, and a request during its offer waits for the answer', async () => {
  const { peer, signals } = connectedPeer(true)
  peer._pc.onnegotiationneeded()
  peer._pc.onnegotiationneeded() // the same tick: one offer
  await tick()
  assert.deepEqual(signals.map(s => s.type), ['offer'])
  await peer.signal({ type: 'renegotiate', renegotiate: true }) // the other side asks while ours is out
  await tick()
  assert.deepEqual(signals.map(s => s.type), ['offer'], 'queued, not a second offer in have-local-offer')
  await peer.signal({ type: 'answer', sdp: 'v=0\r\n' })
  await tick()
  assert.deepEqual(signals.map(s => s.type), ['offer', 'offer'], 'the queued request is served once stable')
  assert.equal(peer._pc.signalingState, 'have-local-offer')
})

test('the other side never offers: it asks, answers offers, and requests a transceiver for a track with no place', async () => {
  const { peer, signals } = connectedPeer(false)
  peer._pc.onnegotiationneeded() // it added a camera
  await tick()
  assert.deepEqual(signals, [{ type: 'renegotiate', renegotiate: true }])
  peer._pc.transceivers = [{ mid: null, sender: { track: { kind: 'video' } } }, { mid: '0', sender: { track: { kind: 'audio' } } }]
  await peer.signal({ type: 'offer', sdp: 'v=0\r\n' })
  assert.deepEqual(signals.slice(1).map(s => s.type), ['answer', 'transceiverRequest'])
  assert.deepEqual(signals[2].transceiverRequest, { kind: 'video', init: undefined })
  await peer.signal({ type: 'offer', sdp: 'v=0\r\n' })
  assert.deepEqual(signals.slice(3).map(s => s.type), ['answer'], 'each missing transceiver is asked for once')
})

test('a transceiver request reaches the initiator\'s connection; an offer to the initiator is ignored', async () => {
  const { peer, signals } = connectedPeer(true)
  await peer.signal({ type: 'transceiverRequest', transceiverRequest: { kind: 'video', init: { direction: 'recvonly' } } })
  assert.deepEqual(peer._pc.added, [['video', { direction: 'recvonly' }]])
  await peer.signal({ type: 'offer', sdp: 'v=0\r\n' })
  assert.equal(peer._pc.signalingState, 'stable')
  assert.deepEqual(signals, [])
})

test('the answering side (A) keeps the ICE credentials it was given in later answers', async () => {
  const peer = new Peer({ id: 'remote', clientId: 'c', initiator: false, rtc: { RTCPeerConnection: Scripted }, config: {} })
  const handshake = await peer.acceptOffer('v=0\r\n', 'given', 'givenpwd')
  assert.match(handshake, /a=ice-ufrag:given\r\n/)
  peer._pc.ondatachannel({ channel: { close () {}, send () {} } })
  peer._channel.onopen()
  const signals = []
  peer.on('signal', signal => signals.push(signal))
  await peer.signal({ type: 'offer', sdp: 'v=0\r\n' })
  assert.match(signals[0].sdp, /a=ice-ufrag:given\r\na=ice-pwd:givenpwd\r\n/, 'Firefox would otherwise send its own: an ICE restart')
})

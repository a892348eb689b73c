import { test } from 'node:test'
import assert from 'node:assert/strict'
import { analyseCandidates, base64ToFingerprint, createSdp, fingerprintToBase64, parseCandidate, readCredentials, reflexiveCandidates, setCredentials, settle } from '../src/sdp.js'

const HEX = Array.from({ length: 32 }, (_, i) => (i * 8).toString(16).padStart(2, '0').toUpperCase()).join(':')

test('fingerprints convert between SDP hex and the 44-character base64 the worker stores', () => {
  const b64 = fingerprintToBase64(HEX)
  assert.equal(b64.length, 44)
  assert.equal(base64ToFingerprint(b64), HEX)
})

test('the minimal SDP carries credentials, fingerprint and role', () => {
  const offer = createSdp(true, 'uf12', 'pw'.repeat(12), fingerprintToBase64(HEX))
  assert.ok(offer.includes('m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n'))
  assert.ok(offer.includes('a=setup:actpass\r\n'))
  assert.ok(createSdp(false, 'u', 'p', fingerprintToBase64(HEX)).includes('a=setup:active\r\n'))
  assert.deepEqual(readCredentials(offer), { ufrag: 'uf12', pwd: 'pw'.repeat(12), fingerprint: fingerprintToBase64(HEX) })
  assert.ok(offer.endsWith('\r\n'))
})

test('munging replaces exactly the ICE credentials', () => {
  const sdp = createSdp(false, 'old1', 'oldpwd', fingerprintToBase64(HEX))
  const munged = setCredentials(sdp, 'new1', 'newpwd')
  assert.deepEqual(readCredentials(munged), { ufrag: 'new1', pwd: 'newpwd', fingerprint: fingerprintToBase64(HEX) })
  assert.equal(munged.split('\r\n').length, sdp.split('\r\n').length)
})

test('hole-punch candidates, one per reflexive IP', () => {
  assert.equal(reflexiveCandidates(['203.0.113.1', '2001:db8::1']),
    'a=candidate:0 1 udp 1 203.0.113.1 30000 typ srflx\r\na=candidate:0 1 udp 2 2001:db8::1 30000 typ srflx\r\n')
})

test('symmetric NATs are recognised from srflx candidates', () => {
  const srflx = (port, rport) => parseCandidate(`candidate:1 1 udp 1 203.0.113.9 ${port} typ srflx raddr 10.0.0.2 rport ${rport}`)
  assert.deepEqual(analyseCandidates([srflx(5000, 4000), srflx(5000, 4000)]), { reflexiveIps: ['203.0.113.9'], isSymmetric: false })
  assert.equal(analyseCandidates([srflx(5000, 4000), srflx(5001, 4000)]).isSymmetric, true)
  const host = parseCandidate('candidate:2 1 udp 2122260223 192.168.1.20 54321 typ host generation 0')
  assert.deepEqual(analyseCandidates([host]), { reflexiveIps: [], isSymmetric: false })
})

test('candidates settle when quiet for twice as long as they took, not at a fixed timeout', t => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'] })
  const doneAt = []
  const feed = settle(() => doneAt.push(Date.now()), 500, 3000)
  t.mock.timers.tick(10); feed('host')
  t.mock.timers.tick(90); feed('srflx') // last candidate at 100 ms: quiet for max(500, 200)
  t.mock.timers.tick(499)
  assert.deepEqual(doneAt, [])
  t.mock.timers.tick(1)
  assert.deepEqual(doneAt, [600], 'a LAN settles in about half a second, not 3 s after its last candidate')

  const slow = []
  const feedSlow = settle(() => slow.push(Date.now()), 500, 3000)
  const start = Date.now()
  t.mock.timers.tick(1000); feedSlow('relay') // a slow link: wait 2 s more
  t.mock.timers.tick(1999); feedSlow('straggler') // and a late candidate restarts the wait, capped
  t.mock.timers.tick(2999)
  assert.deepEqual(slow, [])
  t.mock.timers.tick(1)
  assert.deepEqual(slow, [start + 5999], 'quiet for at most 3 s after the last candidate')

  const ended = []
  const feedEnd = settle(() => ended.push('done'), 500, 3000)
  feedEnd('host'); feedEnd(null)
  t.mock.timers.tick(5000)
  assert.deepEqual(ended, ['done'], 'gathering complete ends at once, and only once')

  const stopped = []
  const feedStopped = settle(() => stopped.push('done'), 500, 3000)
  feedStopped(); t.mock.timers.tick(5000)
  assert.deepEqual(stopped, [], 'stopped (the peer closed): never done')

  const silent = []
  settle(() => silent.push(Date.now()), 500, 3000)
  const silentStart = Date.now()
  t.mock.timers.tick(3000)
  assert.deepEqual(silent, [silentStart + 3000], 'no candidate at all: done after the longest wait')
})

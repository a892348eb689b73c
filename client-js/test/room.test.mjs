// The room's rules (room.js) without WebRTC: who answers whom, when a connection starts, when A's
// package is applied, and when an unconnected peer is dropped.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { reconcile, weAnswer } from '../src/room.js'

const me = { session: 'me-session', symmetric: false, startedAt: 2_000 }
/** A peer row: [session, clientId, symmetric, fingerprint, startedAt, reflexive IPs, data timestamp]. */
const row = (session, { symmetric = false, startedAt = 1_000, t = 5 } = {}) => [session, `${session}-client`, symmetric, 'fp', startedAt, [], t]
/** A package from `from` to us: [to, from, ufrag, pwd, fingerprint, echoed ufrag, pwd, sent at, candidates]. */
const pkg = (from, ufrag, echoed = null) => ['me-session', from, ufrag, 'pwd', 'fp', echoed, null, 1, []]
const peer = (handshake, connected = false) => ({ connected, handshake })
const none = () => new Map()

test('roles: the symmetric side answers; else the later starter; ties by session id; both sides agree', () => {
  const them = { session: 'other', symmetric: false, startedAt: 1_000 }
  assert.equal(weAnswer(me, them), true, 'we started later')
  assert.equal(weAnswer(them, me), false)
  assert.equal(weAnswer({ ...me, startedAt: 500 }, them), false)
  assert.equal(weAnswer(me, { ...them, symmetric: true }), false, 'the symmetric one answers')
  assert.equal(weAnswer({ ...me, symmetric: true, startedAt: 1 }, them), true)
  const [x, y] = [{ session: 'aaa', symmetric: false, startedAt: 7 }, { session: 'bbb', symmetric: false, startedAt: 7 }]
  assert.notEqual(weAnswer(x, y), weAnswer(y, x))
})

test('as B we offer once per row timestamp; as A we answer only a package, and each offer once', () => {
  const later = row('later', { startedAt: 3_000 }) // it started after us: it answers, we offer
  assert.deepEqual(reconcile(me, [later], [], none(), none(), none()), [{ offer: later }])
  assert.deepEqual(reconcile(me, [later], [], none(), new Map([['later', 5]]), none()), [], 'that row was acted on already')
  const earlier = row('earlier') // it started before us: we answer its offer, once it sends one
  assert.deepEqual(reconcile(me, [earlier], [], none(), none(), none()), [])
  const offer = pkg('earlier', 'uf-1')
  assert.deepEqual(reconcile(me, [earlier], [offer], none(), none(), none()), [{ answer: earlier, pkg: offer }])
  assert.deepEqual(reconcile(me, [earlier], [offer], none(), none(), new Map([['earlier', 'uf-1']])), [], 'the same offer is not answered twice')
})

test('as A, a new offer (new ufrag) replaces our pending answer; a connected peer is left alone', () => {
  const earlier = row('earlier')
  const pending = new Map([['earlier', peer({ offerUfrag: 'uf-1' })]])
  assert.deepEqual(reconcile(me, [earlier], [pkg('earlier', 'uf-1')], pending, none(), new Map([['earlier', 'uf-1']])), [])
  const retry = pkg('earlier', 'uf-2')
  assert.deepEqual(reconcile(me, [earlier], [retry], pending, none(), new Map([['earlier', 'uf-1']])),
    [{ drop: 'earlier', reason: 'superseded by a new offer' }, { answer: earlier, pkg: retry }])
  const up = new Map([['earlier', peer({ offerUfrag: 'uf-1' }, true)]])
  assert.deepEqual(reconcile(me, [earlier], [retry], up, none(), none()), [])
})

test('as B, A\'s package is applied once, only when our offer is ready and it answers this attempt', () => {
  const later = row('later', { startedAt: 3_000 })
  const ready = { theirUfrag: 'ours-for-it', answerWith: () => 'sdp' }
  const answer = pkg('later', 'its-ufrag', 'ours-for-it')
  assert.deepEqual(reconcile(me, [later], [answer], new Map([['later', peer(ready)]]), none(), none()), [{ finish: 'later', pkg: answer }])
  assert.deepEqual(reconcile(me, [later], [answer], new Map([['later', peer({ ...ready, applied: true })]]), none(), none()), [], 'applied already')
  assert.deepEqual(reconcile(me, [later], [answer], new Map([['later', peer({ theirUfrag: 'ours-for-it' })]]), none(), none()), [], 'our offer is not ready yet')
  const stale = pkg('later', 'its-ufrag', 'ours-for-an-earlier-attempt')
  assert.deepEqual(reconcile(me, [later], [stale], new Map([['later', peer(ready)]]), none(), none()), [], 'an answer to an earlier offer')
  const p2pcf = pkg('later', 'its-ufrag', null) // p2pcf 1.3.14 echoes nothing: taken as this attempt's
  assert.deepEqual(reconcile(me, [later], [p2pcf], new Map([['later', peer(ready)]]), none(), none()), [{ finish: 'later', pkg: p2pcf }])
})

test('an unconnected peer that is no longer listed is dropped; a connected one stays until it closes', () => {
  const peers = new Map([['gone', peer({})], ['up', peer({}, true)]])
  assert.deepEqual(reconcile(me, [], [], peers, none(), none()), [{ drop: 'gone', reason: 'left before connecting' }])
})

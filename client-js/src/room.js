// The room's rules as plain data: given the room as the worker lists it (peer rows, and the
// packages addressed to us) and the connections we already have, the steps that bring our
// connections in line with it. No WebRTC and no I/O here, so the rules are tested on their own
// (test/room.test.mjs); p2pcf.js carries the steps out.

/**
 * Whether we answer ("A") rather than offer ("B") in the minimal-SDP handshake with `them`: the
 * symmetric side if only one is (its port cannot be predicted, so the other must offer); else the
 * later starter; ties go to the larger session id. Both sides compute the same answer.
 */
export function weAnswer (me, them) {
  return me.symmetric === them.symmetric
    ? (me.startedAt === them.startedAt ? me.session > them.session : me.startedAt > them.startedAt)
    : me.symmetric
}

/**
 * The steps, in order, for rows `[session, clientId, symmetric, fingerprint, startedAt, ips, t]`:
 * `{ answer: row, pkg }` (connect as A to B's package), `{ offer: row }` (connect as B),
 * `{ finish: session, pkg }` (as B, apply A's package), `{ drop: session, reason }`.
 * `peers` maps a session to its connection (`connected`, `handshake`); `processed` to the row
 * timestamp last acted on; `answeredOffers` to the ICE ufrag of the last offer we answered.
 */
export function reconcile (me, rows, packages, peers, processed, answeredOffers) {
  const steps = []
  for (const row of rows) {
    const [session, , symmetric, , startedAt, , timestamp] = row
    const pkg = packages.find(p => p[1] === session)
    let peer = peers.get(session)
    if (weAnswer(me, { session, symmetric, startedAt })) {
      // B gave up on our pending answer and offers again (a new ICE ufrag): answer the new offer.
      if (peer && !peer.connected && pkg && peer.handshake.offerUfrag !== pkg[2]) {
        steps.push({ drop: session, reason: 'superseded by a new offer' })
        peer = null
      }
      if (!peer && pkg && answeredOffers.get(session) !== pkg[2]) steps.push({ answer: row, pkg })
    } else if (!peer) {
      // A row already acted on starts nothing new (over the socket, a package comes on its own).
      if (processed.get(session) !== timestamp) steps.push({ offer: row })
    } else {
      // A's package, if it answers this attempt (it echoes the ufrag we chose for it) and our
      // offer is ready for it.
      const h = peer.handshake
      if (pkg && !h.applied && h.answerWith && (pkg[5] ?? h.theirUfrag) === h.theirUfrag) steps.push({ finish: session, pkg })
    }
  }
  const listed = rows.map(row => row[0])
  for (const [session, peer] of peers) if (!listed.includes(session) && !peer.connected) steps.push({ drop: session, reason: 'left before connecting' })
  return steps
}

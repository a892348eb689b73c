// The minimal SDP of the P2PCF handshake: a data-channel-only description built from an ICE
// ufrag/pwd and a DTLS fingerprint, which is all a peer needs to publish for another to connect.

/** Colon-separated upper-case hex (as in `a=fingerprint`) to base64 of the raw digest. */
export function fingerprintToBase64 (hex) {
  const bytes = hex.split(':').map(pair => parseInt(pair, 16))
  return btoa(String.fromCharCode(...bytes))
}

/** Base64 of a digest to colon-separated upper-case hex. */
export function base64ToFingerprint (b64) {
  return Array.from(atob(b64), c => c.charCodeAt(0).toString(16).padStart(2, '0')).join(':').toUpperCase()
}

/** A data-channel description: `offer` sets up actpass, an answer active. */
export function createSdp (isOffer, ufrag, pwd, fingerprintBase64) {
  return [
    'v=0',
    'o=- 5498186869896684180 2 IN IP4 127.0.0.1',
    's=-',
    't=0 0',
    'a=msid-semantic: WMS',
    'm=application 9 UDP/DTLS/SCTP webrtc-datachannel',
    'c=IN IP4 0.0.0.0',
    'a=mid:0',
    'a=sctp-port:5000',
    `a=setup:${isOffer ? 'actpass' : 'active'}`,
    `a=ice-ufrag:${ufrag}`,
    `a=ice-pwd:${pwd}`,
    `a=fingerprint:sha-256 ${base64ToFingerprint(fingerprintBase64)}`
  ].join('\r\n') + '\r\n'
}

/** The ICE credentials and DTLS fingerprint (base64) in a description. */
export function readCredentials (sdp) {
  const found = {}
  for (const line of sdp.split(/\r?\n/)) {
    if (line.startsWith('a=ice-ufrag:')) found.ufrag ??= line.slice(12)
    else if (line.startsWith('a=ice-pwd:')) found.pwd ??= line.slice(10)
    else if (line.startsWith('a=fingerprint:')) found.fingerprint ??= fingerprintToBase64(line.split(' ')[1].trim())
  }
  return found
}

/** Replace the ICE credentials in a description (the munging the handshake relies on). */
export function setCredentials (sdp, ufrag, pwd) {
  return sdp.split('\r\n').map(line =>
    line.startsWith('a=ice-ufrag:') ? `a=ice-ufrag:${ufrag}` : line.startsWith('a=ice-pwd:') ? `a=ice-pwd:${pwd}` : line
  ).join('\r\n')
}

/** Hole-punching hints: a server-reflexive candidate line per reflexive IP of the remote. */
export function reflexiveCandidates (ips) {
  return ips.map((ip, i) => `a=candidate:0 1 udp ${i + 1} ${ip} 30000 typ srflx\r\n`).join('')
}

/** The fields of an ICE candidate line that the NAT probe needs. */
export function parseCandidate (line) {
  const parts = line.replace(/^a=/, '').split(' ')
  const rport = parts.indexOf('rport')
  return { ip: parts[4], port: +parts[5], type: parts[7], relatedPort: rport > 0 ? +parts[rport + 1] : undefined }
}

/**
 * Reflexive IPs and symmetric-NAT detection from gathered candidates: behind a symmetric NAT,
 * one local port maps to different public ports per destination (two srflx candidates share a
 * related port but not a port).
 */
export function analyseCandidates (candidates) {
  const srflx = candidates.filter(c => c.type === 'srflx')
  const isSymmetric = srflx.some(a => srflx.some(b => a !== b && Number.isInteger(a.relatedPort) && a.relatedPort === b.relatedPort && a.port !== b.port))
  return { reflexiveIps: [...new Set(srflx.map(c => c.ip))], isSymmetric }
}

/**
 * Calls `done` once ICE candidates settle; returns a function to feed each candidate (null when
 * gathering completes, which calls `done` at once; nothing to stop without calling it). Gathering often never completes: a STUN server
 * that does not answer, or Node's wrtc gathering on loopback. So we also stop once candidates go
 * quiet for twice as long as they took to come (at least `quietMs`), or after `maxMs` of nothing:
 * about 0.5 s on a LAN or a lab, a few seconds on a slow link, never more than `maxMs` of silence.
 */
export function settle (done, quietMs, maxMs) {
  const start = Date.now()
  let timer = setTimeout(done, maxMs)
  return line => {
    clearTimeout(timer)
    if (line === undefined) return // stop: no `done`
    if (!line) return done()
    timer = setTimeout(done, Math.min(maxMs, Math.max(quietMs, 2 * (Date.now() - start))))
  }
}

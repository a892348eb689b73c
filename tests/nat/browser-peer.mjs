// A Chromium peer for the NAT lab, run inside a LAN namespace: opens our worker's /demo page (for
// its origin and /p2pcf.js, the client-js bundle), joins the room with client-js, and prints the
// same JSON lines as p2pcf-peer --json (start, connect with the selected candidate pair).
// usage: browser-peer.mjs WORKER_URL ROOM STUN_IP,STUN_IP TURN_URL,USER,PASS TIMEOUT_S [TRANSPORT]
import { launchChromium } from '../lib/browser.mjs'

const [workerUrl, room, stunIps, turn, timeoutS, transport = 'polling'] = process.argv.slice(2)
const [turnUrl, username, credential] = turn.split(',')
const started = Date.now()
const print = event => console.log(JSON.stringify({ ...event, ms: Date.now() - started }))

const browser = await launchChromium()
const timer = setTimeout(async () => {
  process.stderr.write(`browser-peer: not connected after ${timeoutS} s\n`)
  await browser.close()
  process.exit(1)
}, Number(timeoutS) * 1000)
try {
  const page = await browser.newPage()
  await page.goto(`${workerUrl}/demo`)
  print({ event: 'start', room })
  const pair = await page.evaluate(async ({ workerUrl, room, stunIps, turnUrl, username, credential, signalling }) => {
    const { default: P2PCF } = await import('/p2pcf.js')
    const p2pcf = new P2PCF('chromium-peer', room, {
      workerUrl,
      transport: signalling,
      stunIceServers: stunIps.split(',').map(ip => ({ urls: `stun:${ip}:3478` })),
      turnIceServers: [{ urls: turnUrl, username, credential }]
    })
    const peer = await new Promise(resolve => { p2pcf.on('peerconnect', resolve); p2pcf.start() })
    const stats = [...(await peer.getStats()).values()]
    const byId = id => stats.find(s => s.id === id)
    const transport = stats.find(s => s.type === 'transport' && s.selectedCandidatePairId)
    const chosen = byId(transport?.selectedCandidatePairId)
    const side = c => c && { type: c.candidateType, address: c.address, port: c.port }
    const result = { local: side(byId(chosen?.localCandidateId)), remote: side(byId(chosen?.remoteCandidateId)), peer: peer.id }
    setTimeout(() => p2pcf.destroy(), 1000)
    return result
  }, { workerUrl, room, stunIps, turnUrl, username, credential, signalling: transport })
  print({ event: 'connect', ...pair })
  await new Promise(resolve => setTimeout(resolve, 1500))
  clearTimeout(timer)
  await browser.close()
  process.exit(0)
} catch (err) {
  process.stderr.write(`browser-peer: ${err.message}\n`)
  await browser.close()
  process.exit(1)
}

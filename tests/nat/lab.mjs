// The NAT lab (`make nat-test`, and the last step of `make test`): peers behind real NATs made of
// Linux network namespaces and nftables, our worker and coturn (STUN on two addresses, and TURN)
// on a "public" segment, and p2pcf-peer (client-js in Node) on each side. Every pair of NAT kinds
// is run and checked against what the P2PCF protocol promises; one pair has a Chromium peer.
// docs/nat.md draws the topology and explains the results.
//
// Safety: everything lives in namespaces named p2l-*, on 198.51.100.0/24 (TEST-NET-2) and
// 10.0.x.0/24 LANs; nothing is connected to the root namespace, so nothing can route out (the
// public segment's default route ends inside its own namespace). Every namespace, process and
// rule goes away on exit, failure or interrupt (and stale p2l-* namespaces from an earlier crashed
// run are removed first). Every run is bounded in time.
import { execFileSync, spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

const ROOT = resolve(import.meta.dirname, '../..')
const CLI = join(ROOT, 'client-js/bin/p2pcf-peer.js')
const NET = '198.51.100' // TEST-NET-2: the lab's public segment
const WORKER_IP = `${NET}.1`
const STUN_IPS = [`${NET}.2`, `${NET}.3`] // coturn answers on both: p2pcf compares the two
const WORKER_URL = `http://${WORKER_IP}:8787`
/** Two coturn instances, one per address: each serves STUN and TURN (relaying from its own address). */
const TURNS = STUN_IPS.map(address => `turn:${address}:3478,lab,labpass`)
const PAIR_TIMEOUT_S = 45
const NO_CONNECT_TIMEOUT_S = 25
const LAB_DEADLINE_MS = 10 * 60_000
const PREFIX = 'p2l-'

const namespaces = []
const logs = {} // service name -> its output so far
const children = []
let scratch = null

function run (cmd, args, { quiet = false, input } = {}) {
  try {
    return execFileSync(cmd, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], encoding: 'utf8', input })
  } catch (err) {
    if (quiet) return ''
    throw new Error(`${cmd} ${args.join(' ')}: ${err.stderr || err.message}`)
  }
}
const ip = (...args) => run('ip', args)
const inNs = (ns, cmd, ...args) => run('ip', ['netns', 'exec', ns, cmd, ...args])

function cleanup () {
  for (const child of children) {
    try { process.kill(-child.pid, 'SIGKILL') } catch {}
  }
  const stale = run('ip', ['netns', 'list'], { quiet: true }).split('\n').map(line => line.split(' ')[0]).filter(name => name.startsWith(PREFIX))
  for (const ns of new Set([...namespaces, ...stale])) {
    for (const pid of run('ip', ['netns', 'pids', ns], { quiet: true }).split('\n').filter(Boolean)) {
      try { process.kill(Number(pid), 'SIGKILL') } catch {}
    }
    run('ip', ['netns', 'del', ns], { quiet: true })
  }
  namespaces.length = 0
  if (scratch) rmSync(scratch, { recursive: true, force: true })
}

function fail (message) {
  console.error(`nat: ${message}`)
  cleanup()
  process.exit(1)
}

function preflight () {
  if (process.getuid?.() !== 0) fail('the NAT lab needs root (it creates network namespaces); run `make nat-test` as root')
  const installed = tool => run('sh', ['-c', `command -v ${tool}`], { quiet: true })
  for (const tool of ['nft', 'turnserver']) {
    if (!installed(tool)) fail(`${tool} is missing: \`make nat-test\` installs nftables and coturn`)
  }
  if (process.env.NAT_PCAP && !installed('tcpdump')) fail('NAT_PCAP needs tcpdump (apt-get install tcpdump)')
  try {
    ip('netns', 'add', `${PREFIX}check`)
    ip('netns', 'del', `${PREFIX}check`)
  } catch (err) {
    fail(`network namespaces are not available here, so the lab cannot run (${err.message.split('\n')[0]})`)
  }
}

function addNamespace (name) {
  ip('netns', 'add', name)
  namespaces.push(name)
  ip('-n', name, 'link', 'set', 'lo', 'up')
}

/** Plug a new namespace-side interface `inner` of `ns` into the public bridge, with `address`. */
function plugIntoPublic (ns, port, inner, address) {
  inNs(`${PREFIX}pub`, 'ip', 'link', 'add', port, 'type', 'veth', 'peer', 'name', inner, 'netns', ns)
  ip('-n', `${PREFIX}pub`, 'link', 'set', port, 'master', 'br0', 'up')
  ip('-n', ns, 'addr', 'add', `${address}/24`, 'dev', inner)
  ip('-n', ns, 'link', 'set', inner, 'up')
}

/**
 * The topology: the public namespace (bridge, worker, coturn), two public hosts, and for each NAT
 * kind two routers each with one LAN behind it. Returns the places peers can run.
 */
function buildTopology () {
  const pub = `${PREFIX}pub`
  addNamespace(pub)
  ip('-n', pub, 'link', 'add', 'br0', 'type', 'bridge')
  ip('-n', pub, 'link', 'set', 'br0', 'up')
  for (const address of [WORKER_IP, ...STUN_IPS]) ip('-n', pub, 'addr', 'add', `${address}/24`, 'dev', 'br0')
  // The rest of "the internet", where packets to unknown addresses get lost: a default route
  // into a veth pair whose both ends stay in this namespace, toward a gateway that does not
  // exist (a fixed neighbour entry, so nothing waits on ARP; the other end has no address and
  // drops what arrives). A TURN server on a real network has a default route, so relaying
  // toward a peer's private host candidate sends a packet that is lost on the way. Without one
  // that send fails (ENETUNREACH; a blackhole route gives EINVAL), and coturn closes the
  // allocation's relay socket on a send error: relayed pairs then failed depending on which
  // check went out first, mostly on a loaded machine.
  ip('-n', pub, 'link', 'add', 'void', 'type', 'veth', 'peer', 'name', 'void-end')
  for (const end of ['void', 'void-end']) ip('-n', pub, 'link', 'set', end, 'up')
  ip('-n', pub, 'neigh', 'add', '192.0.2.1', 'lladdr', '02:00:00:00:00:01', 'dev', 'void', 'nud', 'permanent')
  ip('-n', pub, 'route', 'add', 'default', 'via', '192.0.2.1', 'dev', 'void', 'onlink')

  const places = {}
  let lan = 1
  for (const [kind, nat] of [['cone', 'masquerade'], ['symmetric', 'masquerade fully-random']]) {
    for (const instance of ['a', 'b']) {
      const router = `${PREFIX}r-${kind.slice(0, 3)}${instance}`
      const host = `${PREFIX}l-${kind.slice(0, 3)}${instance}`
      addNamespace(router)
      addNamespace(host)
      const wan = `${NET}.${10 + lan}`
      plugIntoPublic(router, `v-r${lan}`, 'wan', wan)
      ip('-n', router, 'link', 'add', 'lan', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', host)
      ip('-n', router, 'addr', 'add', `10.0.${lan}.1/24`, 'dev', 'lan')
      ip('-n', router, 'link', 'set', 'lan', 'up')
      ip('-n', host, 'addr', 'add', `10.0.${lan}.2/24`, 'dev', 'eth0')
      ip('-n', host, 'link', 'set', 'eth0', 'up')
      ip('-n', host, 'route', 'add', 'default', 'via', `10.0.${lan}.1`)
      inNs(router, 'sysctl', '-qw', 'net.ipv4.ip_forward=1')
      // A home router: it translates outgoing traffic, and drops what arrives unasked for before
      // conntrack records it (a recorded stray inbound packet would take the port a later
      // outgoing packet needs, and the mapping would no longer be endpoint-independent).
      const rules = [
        'table ip nat {', '  chain postrouting {', '    type nat hook postrouting priority srcnat;', `    oifname "wan" ${nat}`, '  }', '}',
        'table ip filter {', '  chain input {', '    type filter hook input priority filter;', '    iifname "wan" ct state new drop', '  }', '}'
      ].join('\n') + '\n'
      run('ip', ['netns', 'exec', router, 'nft', '-f', '-'], { input: rules })
      places[`${kind}-${instance}`] = { ns: host, kind, address: `10.0.${lan}.2 behind ${wan}` }
      lan++
    }
  }
  for (const [i, instance] of ['a', 'b'].entries()) {
    const host = `${PREFIX}h-${instance}`
    addNamespace(host)
    const address = `${NET}.${30 + i}`
    plugIntoPublic(host, `v-h${i}`, 'eth0', address)
    places[`public-${instance}`] = { ns: host, kind: 'public', address }
  }
  return places
}

/** Start `cmd` inside `ns`, detached (killed as a group on cleanup); resolves when `ready` matches its output. */
function startService (ns, name, cmd, args, ready, env = {}) {
  const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } })
  children.push(child)
  let log = ''
  logs[name] = () => log
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start in 90 s:\n${log.slice(-2000)}`)), 90_000)
    const onData = data => {
      log += data
      if (ready.test(log)) {
        clearTimeout(timer)
        resolve(child)
      }
    }
    child.stdout.on('data', onData)
    child.stderr.on('data', onData)
    child.on('exit', code => { clearTimeout(timer); reject(new Error(`${name} exited (${code}):\n${log.slice(-2000)}`)) })
  })
}

async function startServices () {
  const pub = `${PREFIX}pub`
  const turns = STUN_IPS.map((address, i) => {
    const conf = join(scratch, `turnserver-${i}.conf`)
    writeFileSync(conf, [
      `listening-ip=${address}`, `relay-ip=${address}`,
      'listening-port=3478', `min-port=${49152 + i * 1000}`, `max-port=${49999 + i * 1000}`,
      'fingerprint', 'lt-cred-mech', 'user=lab:labpass', 'realm=p2pcf.lab',
      'no-tls', 'no-dtls', 'no-cli', 'no-rfc5780', 'log-file=stdout', 'simple-log', `pidfile=${join(scratch, `turnserver-${i}.pid`)}`
    ].join('\n') + '\n')
    return startService(pub, `coturn-${i}`, 'turnserver', ['-c', conf, ...(process.env.NAT_DEBUG ? ['--verbose'] : [])], /Total (General|UDP) servers|listener opened on/i)
  })
  const worker = startService(pub, 'the worker', join(ROOT, 'node_modules/.bin/wrangler'), ['dev', '--ip', WORKER_IP, '--port', '8787',
    '--persist-to', join(scratch, 'state'), '--show-interactive-dev-session=false', '--log-level', 'info'], /Ready on/,
  { CLOUDFLARE_CF_FETCH_ENABLED: 'false', WRANGLER_SEND_METRICS: 'false', NO_COLOR: '1' })
  await Promise.all([...turns, worker])
  await new Promise(resolve => setTimeout(resolve, 1000))
}

/** One command-line peer in `place` (with `turn`, a --turn spec, or none); resolves to its exit code and JSON events. */
function cliPeer (place, room, name, turn, timeout = PAIR_TIMEOUT_S) {
  const args = [CLI, '--worker', WORKER_URL, '--room', room, '--name', name, '--json', '--exit-after-connect', '1', '--timeout', String(timeout), '--connect-timeout', '30',
    ...STUN_IPS.flatMap(address => ['--stun', `stun:${address}:3478`]), ...(turn ? ['--turn', turn] : []),
    ...(process.env.NAT_TRANSPORT ? ['--transport', process.env.NAT_TRANSPORT] : [])]
  return peerProcess(place, process.execPath, args)
}

function peerProcess (place, cmd, args) {
  const child = spawn('ip', ['netns', 'exec', place.ns, cmd, ...args], { detached: true, stdio: ['pipe', 'pipe', 'pipe'] })
  children.push(child)
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', d => { stdout += d })
  child.stderr.on('data', d => { stderr += d })
  return new Promise(resolve => child.on('exit', code => {
    const events = stdout.split('\n').filter(line => line.startsWith('{')).map(line => { try { return JSON.parse(line) } catch { return {} } })
    resolve({ code, events, stderr: stderr.trim().split('\n').slice(-3).join(' | ') })
  }))
}

/** What a pair of peer results amounts to. */
function outcome (results) {
  const connects = results.map(r => r.events.find(e => e.event === 'connect'))
  const connected = results.every(r => r.code === 0) && connects.every(Boolean)
  if (!connected) return { connected, path: 'none', detail: results.map(r => r.stderr || `exit ${r.code}`).join(' / '), ms: null }
  const types = connects.map(c => `${c.local?.type ?? '?'}⇄${c.remote?.type ?? '?'}`)
  const relayed = connects.some(c => c.local?.type === 'relay' || c.remote?.type === 'relay')
  return { connected, path: relayed ? 'relay' : 'direct', detail: types.join(', '), ms: Math.max(...connects.map(c => c.ms)) }
}

const CASES = [
  // [left, right, turn, expected, why]
  ['public-a', 'public-b', false, 'direct', 'no NAT at all'],
  ['public-a', 'cone-a', false, 'direct', 'the cone peer reaches the public one; the answer comes back through its mapping'],
  ['public-a', 'symmetric-a', true, 'direct', 'a symmetric NAT still lets its own outgoing checks to a public address out and back'],
  ['cone-a', 'cone-b', false, 'direct', 'both learn their reflexive address from STUN and punch through'],
  ['cone-a', 'symmetric-a', true, 'relay', 'the symmetric side\'s port for the cone peer cannot be predicted: TURN'],
  ['symmetric-a', 'symmetric-b', true, 'relay', 'neither port can be predicted: TURN'],
  ['symmetric-a', 'symmetric-b', false, 'none', 'no TURN given: P2PCF offers no relay, and the hole punch cannot work']
]

async function runPair (places, [left, right, turn, expected, why], index) {
  const room = `nat-lab-${Date.now().toString(36)}-${index}`
  // A pair that must not connect gets less time: the others connect in ~10 s.
  const timeout = expected === 'none' ? NO_CONNECT_TIMEOUT_S : PAIR_TIMEOUT_S
  const results = await Promise.all([cliPeer(places[left], room, `${left}-peer`, turn && TURNS[0], timeout), cliPeer(places[right], room, `${right}-peer`, turn && TURNS[1], timeout)])
  const result = { ...outcome(results), raw: results }
  const ok = expected === 'none' ? !result.connected : result.connected && result.path === expected
  return { left, right, turn, expected, why, ...result, ok }
}

/** The mixed case: Chromium behind a cone NAT, a command-line peer behind a symmetric one, with TURN. */
async function runBrowserPair (places) {
  const room = `nat-lab-browser-${Date.now().toString(36)}`
  const browser = peerProcess(places['cone-b'], process.execPath, [join(ROOT, 'tests/nat/browser-peer.mjs'), WORKER_URL, room, STUN_IPS.join(','), TURNS[0], String(PAIR_TIMEOUT_S), process.env.NAT_TRANSPORT || 'polling'])
  const cli = cliPeer(places['symmetric-b'], room, 'cli-behind-symmetric', TURNS[1])
  const results = await Promise.all([browser, cli])
  const result = outcome(results)
  return { left: 'chromium@cone-b', right: 'symmetric-b', turn: true, expected: 'relay', why: 'Chromium and Node agree on the same protocol across NATs', ...result, ok: result.connected && result.path === 'relay' }
}

function line (r) {
  const pair = `${r.left} ↔ ${r.right}${r.turn ? ' (TURN)' : ''}`.padEnd(42)
  const state = r.connected ? `connected ${r.path}`.padEnd(17) : 'not connected'.padEnd(17)
  const time = r.ms === null ? '—' : `${(r.ms / 1000).toFixed(1)} s`
  return `nat: ${pair} ${state} ${String(r.detail).padEnd(34)} ${time.padStart(7)}   expected ${r.expected}: ${r.ok ? 'ok' : 'WRONG'}`
}

async function main () {
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => fail(`interrupted (${signal})`))
  process.on('exit', cleanup)
  setTimeout(() => fail(`the lab took longer than ${LAB_DEADLINE_MS / 60000} minutes`), LAB_DEADLINE_MS).unref()
  preflight()
  cleanup() // stale namespaces from a run that could not clean up
  scratch = mkdtempSync(join(tmpdir(), 'p2pcf-nat-'))
  const places = buildTopology()
  await startServices()
  if (process.env.NAT_PCAP) { // debugging: UDP captures of the public segment and of one NAT per kind, and the services' logs
    for (const [ns, dev] of [['pub', 'br0'], ['r-conb', 'wan'], ['r-conb', 'lan'], ['r-symb', 'wan'], ['r-symb', 'lan']]) {
      await startService(`${PREFIX}${ns}`, `tcpdump ${ns} ${dev}`, 'tcpdump', ['-i', dev, '-n', '-U', '-w', join(process.env.NAT_PCAP, `${ns}-${dev}.pcap`), 'udp'], /listening on/)
    }
    process.on('exit', () => { for (const name of ['coturn-0', 'coturn-1', 'the worker']) writeFileSync(join(process.env.NAT_PCAP, `${name.replace(/ /g, '-')}.log`), logs[name]()) })
  }
  console.log(`nat: public segment ${NET}.0/24 (worker ${WORKER_IP}, coturn ${STUN_IPS.join(' and ')}); LANs 10.0.1-4.0/24 behind cone (masquerade) and symmetric (masquerade fully-random) routers`)
  const results = []
  if (process.env.NAT_HOLD) { // keep the lab up for poking at it; cleaned up on SIGINT/SIGTERM
    console.log('nat: holding the lab up; stop with SIGTERM')
    return await new Promise(() => {})
  }
  const only = process.env.NAT_ONLY?.split(',').map(Number) // run these cases only (0-based), for debugging
  const runs = CASES.flatMap((testCase, i) => only && !only.includes(i) ? [] : [() => runPair(places, testCase, i)])
  if (!process.env.NAT_SKIP_BROWSER) runs.push(() => runBrowserPair(places))
  for (const run of runs) {
    let result = await run()
    if (process.env.NAT_DEBUG) console.log(['coturn-0', 'coturn-1'].map(n => n + ':\n' + logs[n]().split('\n').filter(l => /error|403|forbidden|permission|peer|relay/i.test(l)).slice(-30).join('\n')).join('\n'))
    if (!result.ok && !process.env.NAT_NORETRY) {
      // Hole punching races timers on both sides; on a loaded machine a pair can miss once. It
      // gets one more run, and both outcomes are printed (and counted in the summary below).
      console.log(`${line(result)}   (first run; running the pair again)`)
      result = { ...(await run()), retried: true }
    }
    console.log(line(result) + (result.retried ? '   (second run)' : ''))
    results.push(result)
  }
  if (process.env.NAT_RESULTS) writeFileSync(process.env.NAT_RESULTS, JSON.stringify(results, null, 2))
  const good = results.filter(r => r.ok).length
  const retried = results.filter(r => r.retried).length
  if (retried) console.log(`nat: ${retried} pair(s) needed a second run; ${results.filter(r => r.retried && r.ok).length} of them then connected as expected`)
  console.log(`nat: ${good} of ${results.length} pairs connected as expected`)
  cleanup()
  process.exit(good === results.length ? 0 : 1)
}

main().catch(err => fail(err.stack || err.message))

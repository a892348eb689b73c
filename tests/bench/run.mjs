// `make bench`: the same simulated p2pcf workload against our worker and the reference
// (p2pcf@1.3.14, unchanged), one after the other in the same run, with identical seeded
// schedules, both facing R2's limits through the same bucket wrapper (tests/emulation/), which
// also counts their operations. Prints tables and writes BENCHMARKS.md.
//
// BENCH_SCALE=0.2 shortens every scenario (a smoke run); BENCH_OUT=- prints without writing;
// BENCH_ONLY=<text> runs the scenarios whose name contains it (also: storm, newcomer, steady,
// websocket, cpu). The WebSocket section (websocket.mjs) runs on a plain worker: no R2 involved.
import { writeFileSync, readFileSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import { gzipSync } from 'node:zlib'
import os from 'node:os'
import { join, resolve } from 'node:path'
import { startWorker } from '../lib/workers.mjs'
import { emulationVars, joinStorm, newcomer, steadyRoom } from '../lib/scenarios.mjs'
import { SimPeer, Tally, seeded } from './simulator.mjs'

const ROOT = resolve(import.meta.dirname, '../..')
// Simulated time runs 5x faster than the wall clock, and R2's per-key limit is scaled by the same
// factor (one write per 200 ms). Not more: local R2 round trips do not compress, and at 20x one
// of them is a tenth of the scaled second, which real R2's never is.
const COMPRESSION = 5
const FAILURE_SHARE = 0.02
const STEADY_COMPRESSION = 2
const SCALE = Number(process.env.BENCH_SCALE || 1)
const MIN = 60_000

/** Scenarios in simulated time. Peers join over `joinSpreadMs`; `churn` of them leave halfway and are replaced. */
const SCENARIOS = [
  { name: '1 room x 2 peers', rooms: 1, peers: 2, durationMs: 5 * MIN, joinSpreadMs: 30_000, churn: 0 },
  { name: '1 room x 10 peers', rooms: 1, peers: 10, durationMs: 5 * MIN, joinSpreadMs: MIN, churn: 0.2 },
  { name: '1 room x 50 peers', rooms: 1, peers: 50, durationMs: 5 * MIN, joinSpreadMs: 2 * MIN, churn: 0.2 },
  { name: '20 rooms x 4 peers', rooms: 20, peers: 4, durationMs: 5 * MIN, joinSpreadMs: MIN, churn: 0.25 }
]

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
const real = simulatedMs => simulatedMs / COMPRESSION

/** Who joins when and leaves when, in simulated ms from the start; the same for both workers. */
function schedule (scenario, seed) {
  const rng = seeded(seed)
  const duration = scenario.durationMs
  const stints = []
  for (let room = 0; room < scenario.rooms; room++) {
    for (let i = 0; i < scenario.peers; i++) {
      const join = Math.floor(rng() * scenario.joinSpreadMs)
      if (rng() < scenario.churn) {
        const leave = Math.floor(duration / 2 + rng() * duration / 3)
        stints.push({ room, join, leave })
        stints.push({ room, join: leave + Math.floor(rng() * 20_000), leave: duration })
      } else {
        stints.push({ room, join, leave: duration })
      }
    }
  }
  return stints
}

async function runScenario (url, scenario, seed) {
  const tally = new Tally()
  const rng = seeded(seed + 1)
  const runId = Math.floor(rng() * 1e9).toString(36)
  const roomName = r => `bench-${runId}-${r}`
  const stints = schedule(scenario, seed)
  const start = Date.now()
  const checkAt = scenario.checkAtMs ?? scenario.durationMs * 0.95
  let lost = 0
  let expected = 0

  const peers = stints.map((stint, id) => ({ stint, peer: new SimPeer({ url, room: roomName(stint.room), id, compression: COMPRESSION, tally, rng }) }))
  const runs = peers.map(async ({ stint, peer }) => {
    await sleep(real(stint.join))
    peer.joinedAt = Date.now()
    await peer.run(start + real(stint.leave))
  })
  const check = (async () => {
    await sleep(real(checkAt))
    for (let r = 0; r < scenario.rooms; r++) {
      const present = peers.filter(({ stint, peer }) => stint.room === r && peer.deleteKey && !peer.stopped)
      const seen = new Set((await observe(url, roomName(r))).map(row => row[0]))
      expected += present.length
      lost += present.filter(({ peer }) => !seen.has(peer.session)).length
    }
  })()
  await Promise.all([...runs, check])
  const peerHours = stints.reduce((sum, s) => sum + (s.leave - s.join), 0) / 3_600_000
  return { tally, peerHours, lost, expected }
}

/**
 * The room as an observer sees it; retried for up to 10 s, since `wrangler dev` under this load has
 * been seen to stop answering for a while (the simulated clients' failures show as non-200 answers).
 */
async function observe (url, room) {
  for (let attempt = 1; ; attempt++) {
    try {
      const res = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ r: room }) })
      return JSON.parse(await res.text()).ps || []
    } catch (err) {
      if (attempt === 20) throw err
      await sleep(500)
    }
  }
}

/** Operations counted by the emulation wrapper around the worker's bucket (both workers alike). */
async function r2Stats (url) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await (await fetch(url + '/__r2/stats')).json()
    } catch (err) {
      // `wrangler dev` under long loads has been seen to stop answering for a while
      if (attempt === 20) throw new Error(`the worker at ${url} stopped answering: ${err.message}`)
      await sleep(500)
    }
  }
}

function percentile (values, p) {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]
}

function metrics ({ tally, peerHours, lost, expected }, ops) {
  const classA = ops.put + ops.list
  const classB = ops.get + (ops.head || 0)
  return {
    perRequest: (classA + classB) / Math.max(1, tally.requests),
    requests: tally.requests / peerHours,
    classA: classA / peerHours,
    classB: classB / peerHours,
    free: ops.delete / peerHours,
    p50: percentile(tally.pollMs, 50),
    p99: percentile(tally.pollMs, 99),
    lost: `${lost}/${expected}`,
    lostCount: lost,
    errors: tally.errors
  }
}

const fmt = n => (Number.isFinite(n) ? (n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(n >= 10 ? 1 : 2)) : '—')
const ratio = (ref, ours) => (ours > 0 ? `${(ref / ours).toFixed(1)}x` : ref > 0 ? '∞' : '—')

/** Peer-hours a month inside the free tier: 1M Class A, 10M Class B a month, 100k requests a day. */
function freeTierPeerHours (m) {
  return Math.min(1e6 / m.classA, 1e7 / m.classB, (100_000 * 30) / m.requests)
}

function wasmSize () {
  try {
    const wasm = readFileSync(join(ROOT, 'build/index_bg.wasm'))
    return { raw: wasm.length, gzip: gzipSync(wasm, { level: 9 }).length }
  } catch {
    return null
  }
}

function gitCommit () {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim()
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], { cwd: ROOT, encoding: 'utf8' }).trim() ? ', with uncommitted changes in src/' : ''
    return commit + dirty
  } catch {
    return 'unknown'
  }
}

/** Run `fn` with a freshly started worker, and stop it whatever happens. */
async function withWorker (start, fn) {
  const worker = await start()
  try {
    return await fn(worker)
  } finally {
    worker.stop()
  }
}

function opsDelta (before, after) {
  return Object.fromEntries(['get', 'head', 'put', 'delete', 'list', 'rateLimited', 'injectedFailures'].map(k => [k, (after[k] || 0) - (before[k] || 0)]))
}

/** Run `fn(url)` on a fresh worker; returns its result and the R2 operations it caused. */
async function counted (start, fn, settleMs = 0) {
  return withWorker(start, async worker => {
    const before = await r2Stats(worker.url)
    const result = await fn(worker.url)
    if (settleMs) await sleep(settleMs)
    const after = await r2Stats(worker.url)
    return { result, ops: opsDelta(before, after), maxAttempts: after.maxAttemptsPerKeyPerInterval, maxWrites: after.maxWritesPerKeyPerInterval }
  })
}

function table (title, note, rows, columns = ['ours', 'reference', 'reference / ours']) {
  return [
    `### ${title}`,
    '',
    ...(note ? [note, ''] : []),
    `| metric | ${columns.join(' | ')} |`,
    `|---|${columns.map(() => '---:').join('|')}|`,
    ...rows.map(([label, ...cells]) => `| ${label} | ${cells.map(c => (typeof c === 'number' ? fmt(c) : c ?? '—')).join(' | ')} |`)
  ].join('\n')
}

async function main () {
  // Fresh `wrangler dev` instances per scenario: long runs under load have seen workerd drop
  // connections or exit, and fresh state isolates scenarios.
  const vars = emulationVars(COMPRESSION, FAILURE_SHARE)
  const startOurs = () => startWorker('ours-emulated', { vars })
  const startReference = () => startWorker('reference-emulated', { vars })
  const startReferenceUnlimited = () => startWorker('reference-emulated')
  const wanted = name => !process.env.BENCH_ONLY || name.includes(process.env.BENCH_ONLY)
  const sections = []
  const summary = []
  const limits = {}
  const vacuumMs = 11_000 // the reference vacuums in waitUntil after a random delay of up to 10 s

  for (const [i, scenario] of SCENARIOS.entries()) {
    if (!wanted(scenario.name)) continue
    scenario.durationMs *= SCALE
    scenario.joinSpreadMs *= SCALE
    const seed = 1000 + i
    process.stdout.write(`${scenario.name}: ours…`)
    const ours = await counted(startOurs, url => runScenario(url, scenario, seed))
    process.stdout.write(' reference…')
    const theirs = await counted(startReference, url => runScenario(url, scenario, seed), vacuumMs)
    console.log(' done')
    const mine = metrics(ours.result, ours.ops)
    const them = metrics(theirs.result, theirs.ops)
    const rows = [
      ['requests / peer-hour', mine.requests, them.requests, ratio(them.requests, mine.requests)],
      ['Class A ops / peer-hour', mine.classA, them.classA, ratio(them.classA, mine.classA)],
      ['Class B ops / peer-hour', mine.classB, them.classB, ratio(them.classB, mine.classB)],
      ['free ops (delete) / peer-hour', mine.free, them.free, ratio(them.free, mine.free)],
      ['R2 ops (A + B) / request', mine.perRequest, them.perRequest, ratio(them.perRequest, mine.perRequest)],
      ['poll latency p50 (ms, real)', mine.p50, them.p50, ratio(them.p50, mine.p50)],
      ['poll latency p99 (ms, real)', mine.p99, them.p99, ratio(them.p99, mine.p99)],
      ['peers lost (observer check)', mine.lost, them.lost, ''],
      ['non-200 answers', mine.errors, them.errors, ''],
      ['writes refused as 429 (emulated limit)', ours.ops.rateLimited, theirs.ops.rateLimited, ''],
      ['most write attempts on one key in one (scaled) second', ours.maxAttempts, theirs.maxAttempts, ''],
      ['free-tier peer-hours / month', freeTierPeerHours(mine), freeTierPeerHours(them), ratio(freeTierPeerHours(mine), freeTierPeerHours(them))]
    ]
    const section = table(scenario.name, `${fmt(ours.result.peerHours)} simulated peer-hours each; ${ours.result.tally.requests} requests to ours, ${theirs.result.tally.requests} to the reference.`, rows)
    console.log('\n' + section + '\n')
    sections.push(section)
    summary.push({ scenario, mine, theirs: them })
  }

  if (wanted('storm')) {
    process.stdout.write('join storm: ours…')
    const ours = await counted(startOurs, url => joinStorm(url, { peers: 20, compression: COMPRESSION }))
    process.stdout.write(' reference…')
    const theirs = await counted(startReference, url => joinStorm(url, { peers: 20, compression: COMPRESSION }), vacuumMs)
    console.log(' done')
    limits.storm = { ours: ours.result, theirs: theirs.result }
    sections.push(table('join storm: 20 peers open one fresh room at the same moment', 'Simulated ms until an observer sees all 20 (it polls every simulated 250 ms for up to 30 s; the most it saw otherwise).', [
      ['all 20 visible after (simulated ms)', ours.result.visibleAfterMs ?? `never (${ours.result.maxSeen}/20)`, theirs.result.visibleAfterMs ?? `never (at most ${theirs.result.maxSeen}/20)`, ''],
      ['non-200 answers', ours.result.tally.errors, theirs.result.tally.errors, '']
    ]))
  }

  if (wanted('newcomer')) {
    const run = url => newcomer(url, { steady: 50, compression: COMPRESSION })
    process.stdout.write('newcomer in a steady 50-peer room: ours…')
    const ours = await counted(startOurs, run)
    process.stdout.write(' reference…')
    const theirs = await counted(startReference, run, vacuumMs)
    process.stdout.write(' reference without emulation…')
    const plain = await counted(startReferenceUnlimited, run, vacuumMs)
    console.log(' done')
    limits.newcomer = { ours: ours.result, theirs: theirs.result, plain: plain.result }
    const cell = r => r.worstMs ?? `${r.missing} never arrived`
    sections.push(table('a newcomer joins a steady 50-peer room', 'Simulated ms from the newcomer\'s start until each existing peer\'s answer package reached it (waiting up to 30 s).', [
      ['answer packages received', `${ours.result.received}/50`, `${theirs.result.received}/50`, `${plain.result.received}/50`],
      ['p50 (simulated ms)', ours.result.p50Ms, theirs.result.p50Ms, plain.result.p50Ms],
      ['worst (simulated ms)', cell(ours.result), cell(theirs.result), cell(plain.result)],
      ['non-200 answers', ours.result.tally.errors, theirs.result.tally.errors, plain.result.tally.errors]
    ], ['ours (emulated)', 'reference (emulated)', 'reference (no emulation)']))
  }

  if (wanted('steady')) {
    // 2x, not 5x: 100 simulated clients forming a mesh at 5x are more than `wrangler dev` on two
    // cores serves (both workers' workerd grows past 500 MB and has been seen to stop answering).
    const compression = STEADY_COMPRESSION
    const steadyVars = emulationVars(compression, FAILURE_SHARE)
    const run = url => steadyRoom(url, { peers: 100, compression, durationMs: 10 * MIN * SCALE, joinSpreadMs: 2 * MIN * SCALE })
    process.stdout.write('steady 100-peer room: ours…')
    const ours = await counted(() => startWorker('ours-emulated', { vars: steadyVars }), run).catch(err => ({ failed: err.message }))
    process.stdout.write(' reference…')
    const theirs = await counted(() => startWorker('reference-emulated', { vars: steadyVars }), run, vacuumMs).catch(err => ({ failed: err.message }))
    console.log(' done')
    const cell = (run, value) => (run.failed ? `run failed: ${run.failed}` : value(run))
    if (!ours.failed) limits.steady = { ours, theirs }
    sections.push(table('a steady 100-peer room for 10 simulated minutes', `At ${compression}x (the emulated limit scaled to match). Peers join over the first 2 minutes; from 2.5 minutes on an observer samples the room every simulated 5 s. A flap is a sample missing a peer that has published and not left. (\`wrangler dev\` serving a 100-peer room on two cores has been seen to stop answering; a failed run says so.)`, [
      ['requests', cell(ours, r => r.result.tally.requests), cell(theirs, r => r.result.tally.requests), ''],
      ['non-200 answers', cell(ours, r => r.result.tally.errors), cell(theirs, r => r.result.tally.errors), ''],
      ['flaps (peer missing from a sample)', cell(ours, r => `${r.result.flaps} in ${r.result.samples} samples`), cell(theirs, r => `${r.result.flaps} in ${r.result.samples} samples`), ''],
      ['peers that flapped', cell(ours, r => r.result.flappedPeers), cell(theirs, r => r.result.flappedPeers), ''],
      ['writes refused as 429 (emulated limit)', cell(ours, r => r.ops.rateLimited), cell(theirs, r => r.ops.rateLimited), ''],
      ['most write attempts on one key in one (scaled) second', cell(ours, r => r.maxAttempts), cell(theirs, r => r.maxAttempts), '']
    ]))
  }

  let websocket = null
  if (wanted('websocket')) {
    const { benchWebSocket } = await import('./websocket.mjs')
    websocket = await benchWebSocket({ steadyMs: 120_000 * SCALE })
    sections.push(websocket.markdown)
  }

  let cpu = null
  if (wanted('cpu')) {
    try {
      process.stdout.write('CPU per request (wasm under Node)…')
      const { measureCpu, markdown } = await import('../cpu/run.mjs')
      const measured = await measureCpu()
      console.log(' done')
      const polls = measured.results.filter(room => room.scenario === 'mid-handshake').map(room => {
        const worst = Math.max(...room.requests.filter(r => r.index < 2).map(r => r.cpu.p99))
        return `${worst} ms at ${room.peers} peers`
      })
      cpu = { headline: `CPU per poll (core in wasm under Node, process CPU time), p99 mid-handshake: ${polls.join(', ')} (budget 2 ms).` }
      sections.push('### CPU per request\n\n' + markdown(measured))
    } catch (err) {
      console.log(` failed: ${err.message}`)
    }
  }

  const size = wasmSize()
  const cpuModel = os.cpus()[0]?.model ?? 'unknown CPU'
  const named = name => summary.find(s => s.scenario.name === name)
  const costScenarios = ['1 room x 2 peers', '1 room x 10 peers', '1 room x 50 peers', '20 rooms x 4 peers'].map(named).filter(Boolean)
  const totalOps = s => s.classA + s.classB
  const doc = [
    '# Benchmarks',
    '',
    `Run on ${new Date().toISOString().slice(0, 10)} (commit ${gitCommit()}) by \`make bench\` on ${os.cpus().length} × ${cpuModel}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ` +
      `Node ${process.version}, both workers under \`wrangler dev\` (workerd, local R2) on this machine, one after the other with identical seeded schedules.`,
    '',
    `**Both workers face R2's limits, emulated** (\`tests/emulation/r2-limits.mjs\`, the same wrapper around each worker's bucket, which also counts the operations): a write to a key less than a (scaled) second after its last write fails with a 429-like error, ${FAILURE_SHARE * 100}% of all R2 operations fail transiently (half of the failing writes after landing), and our worker shares nothing between requests (every request behaves as if served by its own isolate). ` +
      `The workload is \`tests/bench/simulator.mjs\`: simulated p2pcf@1.3.14 clients (first read-only poll, publish, 1.5 s fast polling for 10 s after any change, 5 s slow polling, heartbeat at 90 s, handshake packages, DELETE on leave) with time compressed ${COMPRESSION}x, and the emulated limit scaled by the same factor (one write per ${Math.round(1000 / COMPRESSION)} ms per key). ` +
      'Costs are per simulated peer-hour. Class A = put + list, Class B = get + head, free = delete.',
    '',
    '## Headlines',
    '',
    costScenarios.length ? `- R2 operations per peer-hour (Class A + B), reference / ours: ${costScenarios.map(s => `${(totalOps(s.theirs) / totalOps(s.mine)).toFixed(1)}x (${s.scenario.name})`).join(', ')}.` : null,
    costScenarios.length ? `- Class A per peer-hour, ours / reference: ${costScenarios.map(s => `${fmt(s.mine.classA)} / ${fmt(s.theirs.classA)}`).join(', ')}.` : null,
    costScenarios.length ? `- Non-200 answers: ours ${costScenarios.map(s => s.mine.errors).join(', ')}; reference ${costScenarios.map(s => s.theirs.errors).join(', ')}.` : null,
    limits.storm ? `- Join storm (20 at once): all visible after ${limits.storm.ours.visibleAfterMs ?? 'never'} simulated ms (ours), ${limits.storm.theirs.visibleAfterMs ?? `never; at most ${limits.storm.theirs.maxSeen}/20 seen`} (reference).` : null,
    limits.newcomer ? `- Newcomer in a steady 50-peer room, worst answer package: ours ${limits.newcomer.ours.worstMs ?? 'incomplete'} ms (emulated), reference ${limits.newcomer.theirs.worstMs ?? `incomplete (${limits.newcomer.theirs.received}/50)`} ms (emulated), reference ${limits.newcomer.plain.worstMs ?? `incomplete (${limits.newcomer.plain.received}/50)`} ms (no emulation); simulated time.` : null,
    limits.steady ? `- Steady 100-peer room, 10 simulated minutes: ours ${limits.steady.ours.result.tally.errors} non-200 and ${limits.steady.ours.result.flaps} flaps; reference ${limits.steady.theirs.failed ? `run failed (${limits.steady.theirs.failed})` : `${limits.steady.theirs.result.tally.errors} non-200 and ${limits.steady.theirs.result.flaps} flaps`}.` : null,
    ...(websocket?.headlines ?? []).map(line => `- ${line}`),
    cpu?.headline ? `- ${cpu.headline}` : null,
    size ? `- Worker wasm: ${size.raw.toLocaleString('en-US')} bytes raw, ${size.gzip.toLocaleString('en-US')} bytes gzip.` : '- Worker wasm: not built.',
    '',
    '## Caveats',
    '',
    `- Local R2 round trips (a few ms) do not compress with simulated time; that is why the compression is ${COMPRESSION}x, not more. Real R2 is slower per operation (tens of ms) but its second is a real second.`,
    `- The reference's vacuum runs on the wall clock (every 30 s per room), not on simulated time, so at ${COMPRESSION}x its expiry cost is understated about ${COMPRESSION}-fold.`,
    '- The reference writes in waitUntil after answering; under the emulation its refused and failed writes are lost silently there (they show as lost peers and missing packages, not as non-200 answers).',
    '- Latency is local (client, workers and R2 on one 2-core machine).',
    '',
    '## Scenarios',
    '',
    ...sections.flatMap(s => [s, ''])
  ].filter(line => line !== null).join('\n')
  if (process.env.BENCH_OUT === '-') console.log(doc)
  else console.log(doc.split('## Scenarios')[0])
  if (process.env.BENCH_OUT !== '-') {
    writeFileSync(join(ROOT, 'BENCHMARKS.md'), doc)
    console.log('wrote BENCHMARKS.md')
  }
}

await main()

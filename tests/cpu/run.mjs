// CPU time per request of the worker's core, compiled to wasm (tests/cpu/src/lib.rs), in Node's V8.
//
//   node tests/cpu/run.mjs                 build, measure, print a markdown table
//   CPU_ITERATIONS=200 CPU_WARMUP=20 node tests/cpu/run.mjs      a quicker run
//   import { measureCpu } from './tests/cpu/run.mjs'              the results as an object
//   CPU_BREAKDOWN=all: time each step of every request (by default only where a poll is over 2 ms)
//   CPU_WASM_OPT=0: measure cargo's module as is (by default wasm-opt -O runs on it first, as
//   worker-build --release does for the worker); CPU_JSON=1: print the results object too
//
// Why not time inside the worker: in workerd the clock only advances across I/O, so a request
// cannot see its own CPU time. So the core (the same crate the worker ships, built for
// wasm32-unknown-unknown with the release profile, without the Workers shell) is linked into a bare
// wasm module and called from Node, whose V8 is the engine workerd embeds (not the same V8
// version: see `engine` in the results).
//
// What is measured, per request: copying the request body into wasm memory (as the shell does
// when it reads the body), parse_body + service::poll + PollAnswer::to_json exactly as http::serve
// runs them for a POST, over a MemoryStore holding the room document, and decoding the answer into
// a JS string (as the shell hands it to Response). Two clocks over that same region:
//  - wall: performance.now(), i.e. wall time of the call in V8 on this machine (2 cores). For this
//    synchronous single-threaded call it equals CPU time only on an otherwise idle machine;
//    anything else running (another engineer's tests, builds) preempts it and inflates p99/max.
//  - cpu: user+system CPU time of the Node process (process.cpuUsage, µs resolution), which a
//    preempted call is not charged for. It also counts V8's background threads (GC, tier-up
//    compilation) while the call runs. This is the column the 2 ms budget is checked against.
// `wasm wall` times the wasm call alone. NOT included: R2 I/O (the get, the put), streaming the
// body, building the Response and headers, quota checks; and a MemoryStore `get` copies the stored
// bytes inside wasm where R2's body is copied in from JS (the same order of work). Each timed call
// follows `CPU_WARMUP` untimed ones (default 50) on the room's own instance, and before any room is
// measured every code path has run a few hundred times on the shared compiled module, so V8's
// tier-up to optimised code (and its background compilation, which process.cpuUsage would count)
// is over. A cold isolate's first requests run baseline (Liftoff) code: the first call of each
// kind on the never-run module is reported separately (`coldCalls`).
//
// Rooms (all peers live, identified polls whose `t` matches their row, so a poll is one read):
//  - mid-handshake: a newcomer has just joined peers-1 steady peers; each steady peer has
//    published an answer package to it and it has published one package to each of them.
//  - forming: all peers joined within the last minute and every pair has exchanged packages,
//    applied through the room rules, so the document is what the worker would store: bounded by
//    MAX_ROOM_BYTES (1 MiB), past which packages are shed or publishes refused.
//  - forming-unbounded: the same with all N x (N-1) packages kept. The worker never stores this
//    (it is over MAX_ROOM_BYTES at 50 and 100 peers); it shows what the bound saves.
// Requests: the newcomer's poll (in a forming room: the last to join), a steady peer's poll, and
// that steady peer's heartbeat publish (t 30 s on, with the packages its client still holds; the
// write slot is open, so it writes at once; the stored document is reset, untimed, before each
// one). In a forming room at MAX_ROOM_BYTES that heartbeat is refused (413: its row would be the
// biggest), which is measured as such; "packages as stored" is the same heartbeat carrying only
// the packages its row still holds, which lands and rewrites the ~1 MiB document.
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'

const HERE = import.meta.dirname
const WASM = join(HERE, 'target/wasm32-unknown-unknown/release/p2pcf_cpu_bench.wasm')
const WASM_OPTIMIZED = join(HERE, 'target/wasm32-unknown-unknown/release/p2pcf_cpu_bench.opt.wasm')
const WASM_OPT = join(HERE, '../../node_modules/.bin/wasm-opt')
const NOW = 1_760_000_000_000
const BUDGET_MS = 2 // the issue's bound on a poll's p99

const SCENARIOS = ['mid-handshake', 'forming', 'forming-unbounded']
const KINDS = ['newcomer poll', 'steady poll', 'heartbeat publish', 'heartbeat publish (packages as stored)']
const STEPS = [
  'parse_body',
  'store get (copy of the stored bytes)',
  'RoomDoc::from_json',
  'clone of the parsed RoomDoc (service::poll clones Loaded)',
  'RoomDoc::view',
  'PollAnswer::to_json',
  'publish: packages to raw JSON (wire_packages)',
  'publish: clone + RoomDoc::apply (commit)',
  'publish: RoomDoc::to_json (the write)'
]
const POLL_STEPS = [0, 1, 2, 3, 4, 5]
const PUBLISH_STEPS = [0, 1, 2, 6, 7, 8, 4, 5]

/**
 * Build the module as the worker ships: cargo's release profile, then (as `worker-build --release`
 * does, unless Cargo.toml turns it off) `wasm-opt -O` with worker-build's feature set, using the
 * pinned binaryen from node_modules. Returns the path of the module to measure.
 */
export function buildWasm ({ wasmOpt = true } = {}) {
  execFileSync('cargo', ['build', '--release', '--target', 'wasm32-unknown-unknown', '--manifest-path', join(HERE, 'Cargo.toml')], {
    stdio: ['ignore', 'inherit', 'inherit']
  })
  if (!wasmOpt) return WASM
  if (!existsSync(WASM_OPT)) throw new Error(`${WASM_OPT} is missing (npm install), or pass { wasmOpt: false }`)
  const features = ['mutable-globals', 'sign-ext', 'nontrapping-float-to-int', 'bulk-memory', 'multivalue', 'reference-types', 'exception-handling']
  execFileSync(WASM_OPT, [WASM, '-o', WASM_OPTIMIZED, '-O', ...features.map(f => `--enable-${f}`)], { stdio: ['ignore', 'inherit', 'inherit'] })
  return WASM_OPTIMIZED
}

function stats (samples) {
  const sorted = Float64Array.from(samples).sort()
  const at = q => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]
  const round = x => Math.round(x * 1000) / 1000
  return { p50: round(at(0.5)), p99: round(at(0.99)), max: round(sorted[sorted.length - 1]), mean: round(sorted.reduce((a, b) => a + b, 0) / sorted.length) }
}

/** A fresh instance of `module` with a room set up: `scenario` (index) of `peers` peers. */
async function room (module, peers, scenario) {
  const { exports: ex } = await WebAssembly.instantiate(module, {})
  const docBytes = ex.setup_room(peers, scenario, NOW)
  return { ex, docBytes }
}

/**
 * One request of `kind` on `ex`, timed: returns [wall ms, wasm-call wall ms, cpu ms] and leaves the
 * answer in `.answer` and the status in `.status`. The timed region is the request body's copy
 * into wasm memory, the call, and the answer's decode into a JS string.
 */
function caller (ex, kind, decoder, label) {
  const body = new Uint8Array(ex.memory.buffer, ex.body_ptr(kind), ex.body_len(kind)).slice()
  const call = () => {
    const c0 = process.cpuUsage()
    const t0 = performance.now()
    const ptr = ex.alloc(body.length)
    new Uint8Array(ex.memory.buffer, ptr, body.length).set(body)
    const t1 = performance.now()
    const result = ex.poll_once(ptr, body.length, NOW) >>> 0
    const t2 = performance.now()
    if (result >= 0xc0000000) throw new Error(`${label}: the request slept`)
    // a refusal (a publish into a full forming room: 413) is measured too, and reported
    call.status = result >= 0x80000000 ? result & 0xffff : 200
    call.answer = call.status === 200 ? decoder.decode(new Uint8Array(ex.memory.buffer, ex.answer_ptr(), result)) : ''
    const t3 = performance.now()
    const cpu = process.cpuUsage(c0)
    return [t3 - t0, t2 - t1, (cpu.user + cpu.system) / 1000]
  }
  call.body = body
  return call
}

const round3 = x => Math.round(x * 1000) / 1000

/**
 * Run every code path on the module before anything is measured, so that V8's tier-up (background
 * compilation, whose CPU process.cpuUsage would count) is over. Returns the cold calls: the first
 * call of each kind on a never-run module (baseline code), in a mid-handshake room of 100.
 */
async function warmUpModule (module, decoder) {
  const cold = {}
  for (const [scenario, peers, rounds] of [[0, 100, 300], [1, 50, 60]]) {
    const { ex } = await room(module, peers, scenario)
    for (let kind = 0; kind < KINDS.length; kind++) {
      const call = caller(ex, kind, decoder, 'warm-up')
      for (let i = 0; i < rounds; i++) {
        if (kind >= 2) ex.reset()
        const [wall, , cpu] = call()
        if (i === 0 && scenario === 0) cold[KINDS[kind]] = { wallMs: round3(wall), cpuMs: round3(cpu) }
      }
    }
  }
  await new Promise(resolve => setTimeout(resolve, 250))
  return cold
}

/**
 * Measure every (scenario, peers, request kind). Options: peers, scenarios (names), warmup,
 * iterations, breakdown (true: time each step of each request too; 'over-budget': only where a
 * poll's p99 passes 2 ms), build (false to use the built .wasm as is), wasmOpt (false: measure
 * cargo's module without wasm-opt; env CPU_WASM_OPT=0).
 */
export async function measureCpu (options = {}) {
  const {
    peers = [2, 50, 100],
    scenarios = SCENARIOS,
    warmup = Number(process.env.CPU_WARMUP || 50),
    iterations = Number(process.env.CPU_ITERATIONS || 1000),
    breakdown = 'over-budget',
    breakdownIterations = Math.max(50, Math.round(iterations / 5)),
    build = true,
    wasmOpt = process.env.CPU_WASM_OPT !== '0'
  } = options
  const wasmPath = build ? buildWasm({ wasmOpt }) : wasmOpt ? WASM_OPTIMIZED : WASM
  const module = await WebAssembly.compile(readFileSync(wasmPath))
  const decoder = new TextDecoder()
  const coldCalls = await warmUpModule(module, decoder)
  const results = []

  for (const scenario of scenarios) {
    for (const n of peers) {
      // a fresh instance (fresh linear memory) per room; the compiled code is shared
      const { ex, docBytes } = await room(module, n, SCENARIOS.indexOf(scenario))
      const room_ = { scenario, peers: n, docBytes, rows: ex.doc_rows(), packages: ex.doc_packages(), refusedWhileForming: ex.setup_refused(), requests: [] }

      for (const [kind, name] of KINDS.entries()) {
        // the "as stored" heartbeat differs from the plain one only where the room was bounded
        if (kind === 3 && scenario !== 'forming') continue
        const isPublish = kind >= 2
        const call = caller(ex, kind, decoder, `${scenario}/${n}/${name}`)
        if (isPublish) ex.reset()
        const opsBefore = ex.store_ops() >>> 0
        const first = call()[2]
        const opsAfter = ex.store_ops() >>> 0
        const op = shift => ((opsAfter >>> shift) - (opsBefore >>> shift)) & 0xff
        const ops = `get=${op(0)} put=${op(8)} list=${op(16)} delete=${op(24)}`
        const status = call.status
        if (status !== 200 && !isPublish) throw new Error(`${scenario}/${n}/${name}: answered ${status}`)
        const answer = call.answer
        const parsed = status === 200 ? JSON.parse(answer) : { ps: [], pk: [] }
        const written = isPublish && status === 200 ? ex.stored_len() : null
        for (let i = 0; i < warmup; i++) {
          if (isPublish) ex.reset()
          call()
        }
        const total = []
        const wasm = []
        const cpu = []
        for (let i = 0; i < iterations; i++) {
          if (isPublish) ex.reset()
          const [all, inWasm, used] = call()
          total.push(all)
          wasm.push(inWasm)
          cpu.push(used)
        }
        room_.requests.push({
          kind: name,
          index: kind,
          status,
          ops,
          bodyBytes: call.body.length,
          answerBytes: answer.length,
          answerPeers: parsed.ps.length,
          answerPackages: parsed.pk.length,
          writtenBytes: written,
          firstMs: round3(first),
          cpu: stats(cpu),
          total: stats(total),
          wasm: stats(wasm)
        })
      }

      const overBudget = room_.requests.some(r => r.index < 2 && r.cpu.p99 > BUDGET_MS)
      if (breakdown === true || (breakdown === 'over-budget' && overBudget)) {
        for (const request of room_.requests) {
          if (request.status !== 200) continue // the steps below are those of a served request
          ex.reset()
          ex.prepare_parts(request.index, NOW)
          request.steps = []
          for (const step of request.index >= 2 ? PUBLISH_STEPS : POLL_STEPS) {
            const samples = []
            for (let i = 0; i < warmup + breakdownIterations; i++) {
              const c0 = process.cpuUsage()
              ex.part(step, NOW)
              const used = process.cpuUsage(c0)
              if (i >= warmup) samples.push((used.user + used.system) / 1000)
            }
            request.steps.push({ step: STEPS[step], ...stats(samples) })
          }
        }
      }
      results.push(room_)
    }
  }

  return {
    engine: { node: process.version, v8: process.versions.v8, cpu: os.cpus()[0]?.model, cores: os.cpus().length, loadavg: os.loadavg().map(x => Math.round(x * 100) / 100) },
    module: wasmOpt ? 'cargo --release, then wasm-opt -O (as worker-build --release)' : 'cargo --release (no wasm-opt)',
    coldCalls,
    warmup,
    iterations,
    budgetMs: BUDGET_MS,
    results
  }
}

export function markdown (measured) {
  const kib = b => (b >= 10240 ? `${(b / 1024).toFixed(0)} KiB` : `${b} B`)
  const lines = [
    `CPU time per request, core in wasm (${measured.module}), Node ${measured.engine.node} (V8 ${measured.engine.v8}), ${measured.engine.cpu} (${measured.engine.cores} cores, ` +
      `load average ${measured.engine.loadavg.join(' ')} at the end); ${measured.iterations} timed calls after ${measured.warmup} warm-up each; ms. ` +
      '`cpu`: user+system CPU time of the Node process (process.cpuUsage) over body copy-in, the wasm call and answer decode; ' +
      '`wall`: performance.now() over the same; `wasm wall`: the wasm call alone; `first`: cpu of the first call on the room\'s fresh instance ' +
      '(the module\'s code already warm: every path ran before measuring, so tier-up is over).',
    '',
    `Cold module (never-run code, mid-handshake room of 100), first call: ` +
      Object.entries(measured.coldCalls).map(([kind, c]) => `${kind} ${c.wallMs} ms wall / ${c.cpuMs} ms cpu`).join('; ') + '.',
    '',
    '| room | peers | stored doc | rows / packages | request | store ops | body | answer (ps / pk) | cpu p50 | cpu p99 | cpu max | wall p50 | wall p99 | wasm wall p99 | first | poll cpu p99 < 2 ms |',
    '|---|---:|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|'
  ]
  for (const room of measured.results) {
    for (const r of room.requests) {
      const isPoll = r.index < 2
      lines.push(
        `| ${room.scenario} | ${room.peers} | ${kib(room.docBytes)} | ${room.rows} / ${room.packages} | ${r.kind} | ${r.ops.replace(/ ?\w+=0/g, '')} | ${kib(r.bodyBytes)} | ` +
          `${r.status === 200 ? `${kib(r.answerBytes)} (${r.answerPeers} / ${r.answerPackages})` : `**${r.status}**`} | ` +
          `${r.cpu.p50} | ${r.cpu.p99} | ${r.cpu.max} | ${r.total.p50} | ${r.total.p99} | ${r.wasm.p99} | ${r.firstMs} | ` +
          `${isPoll ? (r.cpu.p99 < measured.budgetMs ? 'yes' : '**no**') : ''} |`
      )
    }
  }
  const broken = measured.results.filter(room => room.requests.some(r => r.steps))
  for (const room of broken) {
    lines.push('', `Where the time goes: ${room.scenario}, ${room.peers} peers (stored doc ${kib(room.docBytes)}), each step alone, cpu ms`, '')
    lines.push('| request | step | p50 | p99 |', '|---|---|---:|---:|')
    for (const r of room.requests) {
      for (const s of r.steps ?? []) lines.push(`| ${r.kind} | ${s.step} | ${s.p50} | ${s.p99} |`)
    }
  }
  const refused = measured.results.filter(room => room.refusedWhileForming > 0)
  if (refused.length) {
    lines.push('', refused.map(room => `${room.scenario} ${room.peers}: ${room.refusedWhileForming} publishes refused (413) while forming the room`).join('; ') + '.')
  }
  return lines.join('\n')
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const measured = await measureCpu({ breakdown: process.env.CPU_BREAKDOWN === 'all' ? true : 'over-budget' })
  console.log(markdown(measured))
  if (process.env.CPU_JSON) console.log(JSON.stringify(measured, null, 2))
}

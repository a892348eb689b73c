// client-js as its users get it: `npm pack` of a clean copy (no dist/; the prepack script builds
// it with the repository's esbuild), the tarball installed into an empty project (offline, optional
// dependencies omitted), then used the ways people use it: ESM import, CommonJS require (the
// constructor itself), the conference entry, the `p2pcf-peer` bin, TypeScript consumers in both
// module modes with and without the DOM lib, a Vite production build, and a plain
// <script type="module"> page with the single-file bundle. The Vite page and the plain page join
// one room on our worker in Chromium and exchange messages.
//
// Runs under tests/run.mjs (OURS_URL), or alone (`node --test tests/suites/packaging.test.mjs`),
// when it starts a worker of its own. Needs build/ (the worker) and node_modules (typescript,
// vite, esbuild, playwright-core from the root package.json).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { tmpdir } from 'node:os'
import { extname, join, relative, resolve, sep } from 'node:path'
import { gzipSync } from 'node:zlib'
import { launchChromium, waitFor } from '../lib/browser.mjs'
import { randomId } from '../lib/p2pcf.mjs'
import { startWorker } from '../lib/workers.mjs'

const ROOT = resolve(import.meta.dirname, '../..')
const CLIENT = join(ROOT, 'client-js')
const BIN = join(ROOT, 'node_modules/.bin')
const TSC = join(ROOT, 'node_modules/typescript/bin/tsc')
const VITE = join(ROOT, 'node_modules/vite/bin/vite.js')

let tmp // everything this suite writes: the staged package, tarballs, the consumer project, npm's cache
let tarball // { file, size, files: [path] (from the tarball itself), npm: npm pack's JSON }
let app // the consumer project the tarball is installed into
let worker // { url, stop? }

/** Run a command; throws with its output unless it exits 0; returns its stdout. */
function run (cmd, args, { cwd } = {}) {
  const result = spawnSync(cmd, args, { cwd, encoding: 'utf8', env: npmEnv(), maxBuffer: 64 << 20 })
  if (result.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} (in ${cwd}) exited ${result.status ?? result.signal}\n${result.stdout}\n${result.stderr}`)
  }
  return result.stdout
}

/** npm with a cache of its own under tmp (the install is --offline), no audit, no fund, errors only. */
function npmEnv () {
  return {
    ...process.env,
    PATH: `${BIN}:${process.env.PATH}`, // the prepack's esbuild: the repository's pinned one
    npm_config_cache: join(tmp, 'npm-cache'),
    npm_config_audit: 'false',
    npm_config_fund: 'false',
    npm_config_update_notifier: 'false',
    npm_config_loglevel: 'error'
  }
}

/**
 * Copy client-js as a fresh clone has it (no node_modules, no dist, no tarballs) to `dest`, and
 * edit its package.json with `edit`.
 */
function stage (dest, edit = pkg => pkg) {
  cpSync(CLIENT, dest, {
    recursive: true,
    filter: src => {
      const rel = relative(CLIENT, src)
      return !rel.split(sep).some(part => part === 'node_modules' || part === 'dist') && !rel.endsWith('.tgz')
    }
  })
  const file = join(dest, 'package.json')
  writeFileSync(file, JSON.stringify(edit(JSON.parse(readFileSync(file, 'utf8'))), null, 2))
  return dest
}

/** `npm pack` in `dir` (its prepack builds dist/); the tarball's path, size and file list. */
function pack (dir, into) {
  mkdirSync(into, { recursive: true })
  const [npm] = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', into], { cwd: dir }))
  const file = join(into, npm.filename)
  const files = run('tar', ['-tzf', file]).split('\n').filter(Boolean).map(p => p.replace(/^package\//, '')).sort()
  return { file, size: statSync(file).size, files, npm }
}

/** Every file a package.json points at: main, module, types, bins, CDN fields and exports targets. */
function referencedFiles (pkg) {
  const out = new Set()
  const add = value => {
    if (typeof value === 'string') out.add(value.replace(/^\.\//, ''))
    else if (value && typeof value === 'object') Object.values(value).forEach(add)
  }
  for (const field of ['main', 'module', 'types', 'unpkg', 'jsdelivr', 'bin', 'exports']) add(pkg[field])
  return [...out].filter(p => !p.includes('*'))
}

const REQUIRED = ['package.json', 'README.md', 'index.d.ts', 'index.d.cts', 'conference.d.ts', 'bin/p2pcf-peer.js',
  'src/index.js', 'src/index.cjs', 'src/p2pcf.js', 'src/peer.js', 'src/conference/index.js',
  'dist/p2pcf.cjs', 'dist/p2pcf.min.js', 'dist/conference.min.js']
const ALLOWED = [/^package\.json$/, /^README\.md$/, /^LICENSE(\.md)?$/, /^(index|conference)\.d\.c?ts$/, /^bin\/[\w-]+\.js$/,
  /^src\/[\w/-]+\.c?js$/, /^dist\/[\w.-]+\.(c?js|map)$/]

/** What is wrong with a tarball's file list, given its package.json: [] when nothing. */
function tarballProblems (files, pkg) {
  const problems = []
  for (const f of files) if (!ALLOWED.some(re => re.test(f))) problems.push(`unexpected file ${f}`)
  for (const f of REQUIRED) if (!files.includes(f)) problems.push(`missing ${f}`)
  for (const f of referencedFiles(pkg)) if (!files.includes(f)) problems.push(`package.json points at ${f}, which is not in the tarball`)
  // every source file of the repository's client-js ships (a new module cannot be left out)
  const walk = dir => readdirSync(dir, { withFileTypes: true }).flatMap(e => e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)])
  for (const f of walk(join(CLIENT, 'src')).map(f => relative(CLIENT, f).split(sep).join('/'))) if (!files.includes(f)) problems.push(`missing ${f}`)
  return problems
}

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'p2pcf-packaging-'))
  const started = Date.now()
  tarball = pack(stage(join(tmp, 'stage')), join(tmp, 'tarballs'))
  app = join(tmp, 'app')
  mkdirSync(app)
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module' }, null, 2))
  run('npm', ['install', '--offline', '--omit=optional', '--no-package-lock', tarball.file], { cwd: app })
  console.log(`packaging: packed and installed in ${Date.now() - started} ms`)
})

after(() => {
  worker?.stop?.()
  if (tmp && !process.env.KEEP_PACKAGING_TMP) rmSync(tmp, { recursive: true, force: true })
  else if (tmp) console.log(`packaging: kept ${tmp}`)
})

test('the tarball holds the package and nothing else: dist/, src/, bin/, types, README, package.json', () => {
  const pkg = JSON.parse(readFileSync(join(CLIENT, 'package.json'), 'utf8'))
  console.log(`packaging: ${tarball.npm.filename}: ${tarball.size} bytes packed, ${tarball.npm.unpackedSize} bytes unpacked, ${tarball.files.length} files`)
  for (const f of tarball.npm.files) console.log(`  ${String(f.size).padStart(7)}  ${f.path}`)
  assert.deepEqual(tarball.npm.files.map(f => f.path).sort(), tarball.files, "npm's list is the tarball's")
  assert.deepEqual(tarballProblems(tarball.files, pkg), [])
  assert.ok(tarball.size < 100_000, `the tarball stays small (${tarball.size} bytes)`)
})

test('the single-file browser build stays within the 8 kB min+gzip budget', () => {
  const js = readFileSync(join(app, 'node_modules/p2pcf-client/dist/p2pcf.min.js'))
  const gzipped = gzipSync(js, { level: 9 }).length
  console.log(`packaging: dist/p2pcf.min.js ${js.length} bytes, ${gzipped} bytes min+gzip`)
  assert.ok(gzipped <= 8000, `${gzipped} bytes min+gzip`)
})

test('the check above goes red for a package whose `files` leave out dist/', () => {
  const broken = pack(stage(join(tmp, 'stage-broken'), pkg => ({ ...pkg, files: pkg.files.filter(f => f !== 'dist') })), join(tmp, 'tarballs-broken'))
  const problems = tarballProblems(broken.files, JSON.parse(readFileSync(join(tmp, 'stage-broken/package.json'), 'utf8')))
  assert.ok(problems.includes('missing dist/p2pcf.min.js'), problems.join('\n'))
})

test("the build tool is declared: client-js pins esbuild, and the repository installs that version", () => {
  const pkg = JSON.parse(readFileSync(join(CLIENT, 'package.json'), 'utf8'))
  const pinned = pkg.devDependencies?.esbuild
  assert.match(pinned ?? '', /^\d+\.\d+\.\d+$/, 'an exact esbuild version in devDependencies')
  assert.match(pkg.scripts.build, /esbuild/)
  assert.equal(pkg.scripts.prepack, 'npm run build')
  const installed = JSON.parse(readFileSync(join(ROOT, 'node_modules/esbuild/package.json'), 'utf8')).version
  assert.equal(installed, pinned, 'the root package.json installs the esbuild client-js declares')
})

test('ESM: `import P2PCF from "p2pcf-client"`, the conference and browser entries, in Node', () => {
  writeFileSync(join(app, 'esm-check.mjs'), `
    import P2PCF, { P2PCF as Named, Peer } from 'p2pcf-client'
    import { Sender, Receiver, MemoryDriver, BroadcastChannelDriver, WebSocketDriver } from 'p2pcf-client/conference'
    import BrowserP2PCF from 'p2pcf-client/browser'
    import * as browserConference from 'p2pcf-client/conference/browser'
    const p2pcf = new P2PCF('client-a', 'room-a', { rtc: { RTCPeerConnection: class {} }, contextId: 'context-a' })
    console.log(JSON.stringify({
      resolved: import.meta.resolve('p2pcf-client'),
      type: typeof P2PCF, named: Named === P2PCF, peer: typeof Peer, instance: p2pcf instanceof P2PCF,
      contextId: p2pcf.contextId, chainable: p2pcf.on('msg', () => {}) === p2pcf,
      conference: [Sender, Receiver, MemoryDriver, BroadcastChannelDriver, WebSocketDriver].map(c => typeof c),
      browser: typeof BrowserP2PCF, browserConference: Object.keys(browserConference).sort()
    }))
  `)
  const got = JSON.parse(run(process.execPath, ['esm-check.mjs'], { cwd: app }))
  assert.match(got.resolved, /node_modules\/p2pcf-client\/src\/index\.js$/)
  assert.deepEqual({ ...got, resolved: undefined }, {
    resolved: undefined,
    type: 'function',
    named: true,
    peer: 'function',
    instance: true,
    contextId: 'context-a',
    chainable: true,
    conference: ['function', 'function', 'function', 'function', 'function'],
    browser: 'function',
    browserConference: ['BroadcastChannelDriver', 'MemoryDriver', 'Receiver', 'Sender', 'WebSocketDriver']
  })
})

test('CommonJS: `require("p2pcf-client")` is the constructor itself (with .default), from dist/p2pcf.cjs', () => {
  writeFileSync(join(app, 'cjs-check.cjs'), `
    const P2PCF = require('p2pcf-client')
    const { Peer } = require('p2pcf-client')
    const p2pcf = new P2PCF('client-b', 'room-b', { rtc: { RTCPeerConnection: class {} }, contextId: 'context-b' })
    console.log(JSON.stringify({
      resolved: require.resolve('p2pcf-client'),
      type: typeof P2PCF, name: P2PCF.name, default: P2PCF.default === P2PCF, named: P2PCF.P2PCF === P2PCF,
      peer: typeof Peer, instance: p2pcf instanceof P2PCF, contextId: p2pcf.contextId,
      version: require('p2pcf-client/package.json').version
    }))
  `)
  // as on Node 20 before 20.19, where require() of ESM throws: it must not need that
  const flags = process.allowedNodeEnvironmentFlags.has('--experimental-require-module') ? ['--no-experimental-require-module'] : []
  const got = JSON.parse(run(process.execPath, [...flags, 'cjs-check.cjs'], { cwd: app }))
  assert.match(got.resolved, /node_modules\/p2pcf-client\/dist\/p2pcf\.cjs$/)
  const version = JSON.parse(readFileSync(join(CLIENT, 'package.json'), 'utf8')).version
  assert.deepEqual({ ...got, resolved: undefined }, {
    resolved: undefined, type: 'function', name: 'P2PCF', default: true, named: true, peer: 'function', instance: true, contextId: 'context-b', version
  })
})

/**
 * The public methods and accessors of the shipped classes (their prototype chains, `_private` ones
 * and EventTarget's own left out), printed by a script run in the consumer project.
 */
const MEMBERS_SCRIPT = `
import { P2PCF, Peer } from 'p2pcf-client'
import * as conference from 'p2pcf-client/conference'
const inherited = new Set(Object.getOwnPropertyNames(EventTarget.prototype))
const members = C => {
  const names = new Set()
  for (let proto = C.prototype; proto && proto !== Object.prototype && proto !== EventTarget.prototype; proto = Object.getPrototypeOf(proto)) {
    for (const name of Object.getOwnPropertyNames(proto)) if (name !== 'constructor' && !name.startsWith('_')) names.add(name)
  }
  return [...names].sort()
}
const classes = { P2PCF, Peer, ...conference }
console.log(JSON.stringify({
  inherited: [...inherited],
  members: Object.fromEntries(Object.entries(classes).map(([name, C]) => [name, members(C)]))
}))
`
/** Called by P2PCF during the handshake, not by users: public in JS, left out of the types on purpose. */
const PEER_HANDSHAKE = ['acceptAnswer', 'acceptOffer', 'addCandidates', 'createOffer']

test('the types declare every public method of every class, and no method the code lacks', async () => {
  writeFileSync(join(app, 'members.mjs'), MEMBERS_SCRIPT)
  const { inherited, members } = JSON.parse(run(process.execPath, ['members.mjs'], { cwd: app }))
  const { default: ts } = await import('typescript')
  const declared = {} // class -> Map(member name -> whether it is declared as a method)
  for (const name of ['index.d.cts', 'conference.d.ts']) {
    const file = join(app, 'node_modules/p2pcf-client', name)
    const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest)
    const visit = node => {
      if (ts.isClassDeclaration(node) && node.name) {
        declared[node.name.text] = new Map(node.members.filter(m => m.name).map(m => [m.name.getText(source), ts.isMethodDeclaration(m)]))
      }
      ts.forEachChild(node, visit)
    }
    visit(source)
  }
  assert.deepEqual(Object.keys(members).filter(cls => !declared[cls]), [], 'classes without types')
  for (const [cls, names] of Object.entries(members)) {
    const undeclared = names.filter(name => !declared[cls].has(name) && !(cls === 'Peer' && PEER_HANDSHAKE.includes(name)))
    assert.deepEqual(undeclared, [], `${cls}: methods without types`)
    const unimplemented = [...declared[cls]].filter(([name, method]) => method && !names.includes(name) && !inherited.includes(name)).map(([name]) => name)
    assert.deepEqual(unimplemented, [], `${cls}: methods in the types that the code does not have`)
  }
})

test('the p2pcf-peer bin is installed and runs (--help) without the optional dependencies', () => {
  const out = run(join(app, 'node_modules/.bin/p2pcf-peer'), ['--help'], { cwd: app })
  assert.match(out, /usage: p2pcf-peer --worker URL --room ROOM/)
})

// TypeScript consumers. Each is its own project next to the installed package, type-checked with
// `tsc --noEmit` (strict, skipLibCheck off, so the package's .d.ts/.d.cts files are checked too).
// The `@ts-expect-error` lines fail the check if the types were too loose to catch the mistake.

const ESM_CONSUMER = `
import P2PCF, { P2PCF as Named, Peer, type P2PCFOptions, type IceServer } from 'p2pcf-client'
import { Sender, Receiver, MemoryDriver, WebSocketDriver, type Driver } from 'p2pcf-client/conference'

const turn: IceServer = { urls: 'turn:turn.example:3478', username: 'u', credential: 'c' }
const options: P2PCFOptions = {
  workerUrl: 'http://127.0.0.1:8787', stunIceServers: [], turnIceServers: [turn], transport: 'auto',
  fetch: async (url, init) => ({ ok: true, url, init }), rtcPeerConnectionOptions: { iceTransportPolicy: 'all' }
}
const p2pcf: Named = new P2PCF('client-id', 'room-id', options)
const onMsg = (peer: Peer, data: ArrayBuffer): void => { const id: string = peer.client_id; const n: number = data.byteLength; void id; void n }
p2pcf.on('msg', onMsg).on('peerconnect', peer => {
  void p2pcf.send(peer, 'hello')
  void p2pcf.send(peer, new Uint8Array(8))
  peer.on('data', data => data.byteLength).on('close', () => {})
  void peer.getStats().then(stats => stats)
  peer.addTransceiver('video', { direction: 'recvonly' })
  const queued: number = peer.bufferedAmount; void queued
})
p2pcf.on('peerfailed', (peer, reason) => reason.toUpperCase() + peer.id)
p2pcf.on('error', (error, peer) => error.message + (peer?.id ?? ''))
p2pcf.off('msg', onMsg).removeListener('msg', onMsg)
const started: Promise<void> = p2pcf.start()
const broadcast: Promise<void[]> = p2pcf.broadcast('all')
const signalling: 'websocket' | 'polling' | null = p2pcf.signalling
for (const [id, peer] of p2pcf.peers) if (peer instanceof Peer) void id
p2pcf.destroy()
void started; void broadcast; void signalling

// @ts-expect-error a room id is a string
new P2PCF('client-id', 42)
// @ts-expect-error msg data is an ArrayBuffer
p2pcf.on('msg', (peer: Peer, data: string) => data)
// @ts-expect-error peers are made by P2PCF
new Peer()
// @ts-expect-error no such transport
new P2PCF('client-id', 'room-id', { transport: 'carrier-pigeon' })

const driver: Driver = new MemoryDriver()
const sender = new Sender({ driver, iceServers: [], verify: async (id, credentials) => credentials === id })
sender.addEventListener('connect', ({ detail }) => { const id: string = detail.id; void id })
sender.addEventListener('message', ({ detail }) => detail.message)
sender.start({ room: 'room', dataChannel: true, state: { title: 'hi' } })
sender.send('hello')
sender.sync({ slide: 2 })
const receiver = new Receiver({ driver, pingInterval: 5 })
receiver.addEventListener('message', ({ detail }) => { const state: Record<string, any> = detail.state; void state })
receiver.start({ room: 'room', credentials: 'ticket' })
receiver.stop()
new WebSocketDriver({ workerUrl: 'http://127.0.0.1:8787', namespace: 'app' }).close()
// @ts-expect-error a sender needs a driver
new Sender({})
`

const CJS_CONSUMER = `
import P2PCF = require('p2pcf-client')

const options: P2PCF.P2PCFOptions = { workerUrl: 'http://127.0.0.1:8787', stunIceServers: [], turnIceServers: [] }
const p2pcf: P2PCF = new P2PCF('client-id', 'room-id', options)
const alsoDefault: typeof P2PCF = P2PCF.default
const alsoNamed: typeof P2PCF = P2PCF.P2PCF
p2pcf.on('msg', (peer: P2PCF.Peer, data: ArrayBuffer) => peer.send(data))
p2pcf.removeListener('msg', () => {})
for (const peer of p2pcf.peers.values()) if (peer instanceof P2PCF.Peer) void peer.getStats()
void p2pcf.start().then(() => p2pcf.destroy())
void alsoDefault; void alsoNamed
// @ts-expect-error msg data is an ArrayBuffer
p2pcf.on('msg', (peer: P2PCF.Peer, data: string) => data)

// the ESM-only conference entry, from CommonJS: import()
async function conference (): Promise<void> {
  const { Sender, MemoryDriver } = await import('p2pcf-client/conference')
  new Sender({ driver: new MemoryDriver() }).start({ room: 'room' })
}
void conference()
`

// Node's own types (@types/node): its globals (fetch, EventTarget, Blob) must not clash with ours.
const NODE_TYPES_EXTRA = `
new P2PCF('client-id', 'room-id', { fetch })
const target: EventTarget = new Sender({ driver: new MemoryDriver() })
void target
`

// A browser project (DOM lib, bundler resolution, as with Vite): the DOM's own classes flow through.
const DOM_EXTRA = `
async function media (peer: Peer): Promise<void> {
  const stream: MediaStream = await navigator.mediaDevices.getUserMedia({ video: true })
  peer.addStream(stream)
  const rtpSender: RTCRtpSender = peer.addTrack(stream.getTracks()[0], stream)
  const stats: RTCStatsReport = await peer.getStats()
  await peer.replaceTrack(stream.getTracks()[0], null)
  // @ts-expect-error no such direction
  peer.addTransceiver('audio', { direction: 'sideways' })
  // @ts-expect-error not a MediaStream
  peer.addStream({ id: 'not-a-stream' })
  sender.start({ stream })
  void rtpSender; void stats
}
void media
new P2PCF('client-id', 'room-id', { fetch: window.fetch, WebSocket, rtc: window })
const target: EventTarget = receiver
receiver.addEventListener('stream', ({ detail }) => { const video = document.createElement('video'); video.srcObject = detail.stream })
receiver.addEventListener('connect', event => { const pc: RTCPeerConnection = event.detail.peer; event.preventDefault(); void pc })
void target
`

const TS_PROJECTS = {
  'esm-node': { type: 'module', file: 'index.ts', code: ESM_CONSUMER, options: { module: 'nodenext', lib: ['es2022'], types: [] } },
  'cjs-node': { type: 'commonjs', file: 'index.ts', code: CJS_CONSUMER, options: { module: 'nodenext', lib: ['es2022'], types: [] } },
  'cts-node': { type: 'module', file: 'index.cts', code: CJS_CONSUMER, options: { module: 'nodenext', lib: ['es2022'], types: [] } },
  'esm-node-types': { type: 'module', file: 'index.ts', code: ESM_CONSUMER + NODE_TYPES_EXTRA, options: { module: 'nodenext', lib: ['es2022'], types: ['node'], typeRoots: [join(ROOT, 'node_modules/@types')] } },
  'cjs-node-types': { type: 'commonjs', file: 'index.ts', code: CJS_CONSUMER, options: { module: 'nodenext', lib: ['es2022'], types: ['node'], typeRoots: [join(ROOT, 'node_modules/@types')] } },
  'esm-browser-bundler': { type: 'module', file: 'index.ts', code: ESM_CONSUMER + DOM_EXTRA, options: { module: 'esnext', moduleResolution: 'bundler', lib: ['es2022', 'dom'], types: [] } }
}

for (const [name, project] of Object.entries(TS_PROJECTS)) {
  const dom = project.options.lib.includes('dom') ? 'with' : 'without'
  const node = project.options.types.includes('node') ? ', with @types/node' : ''
  test(`TypeScript: ${name} (module ${project.options.module}, package type ${project.type}, ${project.file}, ${dom} the DOM lib${node}) type-checks`, () => {
    const dir = join(app, 'ts', name)
    mkdirSync(dir, { recursive: true })
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: `ts-${name}`, private: true, type: project.type }))
    writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { strict: true, noEmit: true, skipLibCheck: false, target: 'es2022', noUnusedLocals: false, ...project.options },
      files: [project.file]
    }, null, 2))
    writeFileSync(join(dir, project.file), project.code)
    run(process.execPath, [TSC, '-p', 'tsconfig.json'], { cwd: dir })
  })
}

// The page both browser pages run: join ?room on ?worker as ?name, greet every peer that connects,
// record what arrives. Vite bundles it with `import P2PCF from 'p2pcf-client'`; the plain page
// imports the package's single-file dist/p2pcf.min.js.
const PAGE = `
const params = new URLSearchParams(location.search)
const name = params.get('name')
window.received = []
window.errors = []
const p2pcf = new P2PCF(name, params.get('room'), { workerUrl: params.get('worker'), stunIceServers: [], turnIceServers: [] })
p2pcf.on('peerconnect', peer => p2pcf.send(peer, 'hello from ' + name))
p2pcf.on('msg', (peer, data) => window.received.push({ from: peer.client_id, text: new TextDecoder().decode(data) }))
p2pcf.on('error', error => window.errors.push(String(error)))
window.addEventListener('error', event => window.errors.push(String(event.message)))
p2pcf.start().then(() => { window.started = true }, error => window.errors.push(String(error)))
`

/** One Sender and one Receiver in the page, over a MemoryDriver: resolves to what the receiver got. */
const CONFERENCE_CHECK = `
window.conferenceCheck = () => new Promise((resolve, reject) => {
  const driver = new MemoryDriver()
  const sender = new Sender({ driver, iceServers: [] })
  const receiver = new Receiver({ driver, iceServers: [] })
  receiver.addEventListener('message', ({ detail }) => { resolve(detail.message); sender.stop(); receiver.stop() })
  receiver.addEventListener('error', ({ detail }) => reject(detail.error))
  sender.addEventListener('connect', ({ detail }) => sender.send('conference says hi', detail.id)) // queued until the channel opens
  sender.start({ room: 'vite-room', dataChannel: true })
  receiver.start({ room: 'vite-room' })
})
`

let web // the Vite app's directory (web/dist is what gets served)

test('a Vite production build of an app importing p2pcf-client (and /conference) succeeds', () => {
  web = join(app, 'web')
  mkdirSync(web)
  writeFileSync(join(web, 'index.html'), '<!doctype html>\n<html><head><meta charset="utf-8"><title>vite app</title></head>\n<body><script type="module" src="/main.js"></script></body></html>\n')
  writeFileSync(join(web, 'main.js'), `import P2PCF from 'p2pcf-client'\nimport { Sender, Receiver, MemoryDriver } from 'p2pcf-client/conference'\n${PAGE}\n${CONFERENCE_CHECK}`)
  const started = Date.now()
  run(process.execPath, [VITE, 'build', '--logLevel', 'warn'], { cwd: web })
  const assets = readdirSync(join(web, 'dist/assets')).filter(f => f.endsWith('.js'))
  assert.equal(assets.length, 1, `one JS chunk: ${assets}`)
  const js = readFileSync(join(web, 'dist/assets', assets[0]))
  console.log(`packaging: vite build in ${Date.now() - started} ms; ${assets[0]}: ${js.length} bytes, ${gzipSync(js, { level: 9 }).length} gzip`)
  const text = js.toString()
  // (assert.ok, not assert.match: a failure should not print the whole bundle)
  assert.ok(text.includes('Client ID must be at least four characters'), 'P2PCF is in the bundle')
  assert.ok(text.includes('conference says hi'), 'so is the conference check')
  assert.ok(!/__toCommonJS|__commonJS|module\.exports\s*=/.test(text), 'the ESM entry was bundled, not dist/p2pcf.cjs')
  assert.ok(existsSync(join(web, 'dist/index.html')))
})

/** Serve the Vite output, plus /plain.html and /p2pcf.min.js (the installed package's dist file). */
async function serveSite () {
  const types = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css' }
  const extra = {
    '/plain.html': join(app, 'plain.html'),
    '/p2pcf.min.js': join(app, 'node_modules/p2pcf-client/dist/p2pcf.min.js')
  }
  const dist = join(web, 'dist')
  const server = createServer((req, res) => {
    const path = new URL(req.url, 'http://x').pathname
    const file = extra[path] ?? join(dist, path === '/' ? 'index.html' : path)
    if (!file.startsWith(dist) && !Object.values(extra).includes(file)) return res.writeHead(403).end()
    if (!existsSync(file) || !statSync(file).isFile()) return res.writeHead(404).end('not found')
    res.writeHead(200, { 'Content-Type': types[extname(file)] || 'application/octet-stream', 'Cache-Control': 'no-store' }).end(readFileSync(file))
  })
  await new Promise(r => server.listen(0, '127.0.0.1', r))
  return { url: `http://127.0.0.1:${server.address().port}`, close: () => server.close() }
}

test('in Chromium, the Vite-built page and a plain <script type="module"> page join one room and exchange messages', async () => {
  assert.ok(web && existsSync(join(web, 'dist/index.html')), 'the Vite build ran')
  writeFileSync(join(app, 'plain.html'), `<!doctype html>\n<html><head><meta charset="utf-8"><title>plain</title></head><body>\n<script type="module">\nimport P2PCF from './p2pcf.min.js'\n${PAGE}\n</script>\n</body></html>\n`)
  worker = process.env.OURS_URL ? { url: process.env.OURS_URL } : await startWorker('ours')
  const site = await serveSite()
  const browser = await launchChromium()
  try {
    const room = randomId('packaging-')
    const open = async (path, name) => {
      const context = await browser.newContext()
      const page = await context.newPage()
      page.on('pageerror', err => console.error(`[${name}] page error:`, err.message))
      await page.goto(`${site.url}${path}?room=${room}&name=${name}&worker=${encodeURIComponent(worker.url)}`)
      await page.waitForFunction(() => window.started === true || window.errors?.length > 0, null, { timeout: 20_000 })
      return { page, name }
    }
    const started = Date.now()
    const vite = await open('/', 'vite-page')
    const plain = await open('/plain.html', 'plain-page')
    for (const [to, from] of [[vite, plain], [plain, vite]]) {
      const got = await waitFor(() => to.page.evaluate(() => window.received.length > 0 && window.received), 30_000, `${to.name} to hear from ${from.name}`)
      assert.deepEqual(got, [{ from: from.name, text: `hello from ${from.name}` }])
    }
    console.log(`packaging: both pages greeted each other ${Date.now() - started} ms after the first opened`)
    for (const { page, name } of [vite, plain]) assert.deepEqual(await page.evaluate(() => window.errors), [], `${name} had no errors`)
    assert.equal(await vite.page.evaluate(() => window.conferenceCheck()), 'conference says hi', 'the conference entry works in the Vite bundle')
  } finally {
    await browser.close()
    site.close()
  }
})

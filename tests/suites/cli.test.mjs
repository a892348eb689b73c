// p2pcf-peer, the command-line peer (client-js/bin), against our running worker: two peers
// connect and report the selected candidate pair, a file arrives intact, stdin lines are
// delivered, and failures exit non-zero with a message.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { randomId } from '../lib/p2pcf.mjs'
import { waitFor } from '../lib/browser.mjs'

const OURS = process.env.OURS_URL
const CLI = resolve(import.meta.dirname, '../../client-js/bin/p2pcf-peer.js')

/** Run the CLI; resolves to { code, stdout, stderr, events (parsed JSON lines) }. */
function peer (args, { stdin = null } = {}) {
  return new Promise(resolve => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', d => { stdout += d })
    child.stderr.on('data', d => { stderr += d })
    if (stdin) setTimeout(() => child.stdin.write(stdin), 0)
    child.on('exit', code => {
      const events = stdout.split('\n').filter(line => line.startsWith('{')).map(line => JSON.parse(line))
      resolve({ code, stdout, stderr, events })
    })
  })
}

test('two command-line peers connect, name the candidate pair, and move a file intact', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'p2pcf-cli-'))
  const file = join(dir, 'payload.bin')
  const bytes = randomBytes(2_500_000)
  writeFileSync(file, bytes)
  const room = randomId('cli-')
  const [sender, receiver] = await Promise.all([
    peer(['--worker', OURS, '--room', room, '--name', 'cli-alpha', '--json', '--send', file, '--exit-after-connect', '1', '--timeout', '60']),
    peer(['--worker', OURS, '--room', room, '--name', 'cli-bravo', '--json', '--receive', join(dir, 'in'), '--exit-after-connect', '1', '--timeout', '60'])
  ])
  assert.equal(sender.code, 0, sender.stderr)
  assert.equal(receiver.code, 0, receiver.stderr)
  const connect = sender.events.find(e => e.event === 'connect')
  assert.equal(connect.client, 'cli-bravo')
  assert.equal(connect.local.type, 'host')
  assert.match(connect.remote.address, /\d/)
  const sha = createHash('sha256').update(bytes).digest('hex')
  assert.deepEqual(receiver.events.find(e => e.event === 'file-received'), { ...receiver.events.find(e => e.event === 'file-received'), bytes: bytes.length, sha256: sha, ok: true })
  assert.equal(sender.events.find(e => e.event === 'file-sent').ok, true)
  assert.equal(createHash('sha256').update(readFileSync(join(dir, 'in', 'payload.bin'))).digest('hex'), sha)
  console.log(`cli: start to connected ${connect.ms} ms; ${bytes.length} bytes sent and acknowledged at ${sender.events.find(e => e.event === 'file-sent').ms} ms`)
})

/** A CLI peer left running: its JSON events as they come, and `until(match)` to wait for one. */
function running (args) {
  const child = spawn(process.execPath, [CLI, ...args, '--json'], { stdio: ['pipe', 'pipe', 'pipe'] })
  const events = []
  let buffer = ''
  child.stdout.on('data', d => {
    buffer += d
    const lines = buffer.split('\n')
    buffer = lines.pop()
    for (const line of lines) if (line.startsWith('{')) events.push(JSON.parse(line))
  })
  const exited = new Promise(resolve => child.on('exit', code => resolve(code)))
  const until = (match, ms = 30_000) => waitFor(() => events.find(match), ms, 'a CLI event')
  return { child, events, until, exited }
}

test('stdin lines reach the other peer; SIGTERM leaves cleanly', async () => {
  const room = randomId('cli-')
  const talker = running(['--worker', OURS, '--room', room, '--name', 'cli-talker'])
  const listener = running(['--worker', OURS, '--room', room, '--name', 'cli-listen'])
  await talker.until(e => e.event === 'connect')
  talker.child.stdin.write('hello over stdin\n')
  const message = await listener.until(e => e.event === 'message')
  assert.deepEqual([message.client, message.text], ['cli-talker', 'hello over stdin'])
  talker.child.kill('SIGTERM')
  assert.equal(await talker.exited, 0)
  assert.equal((await listener.until(e => e.event === 'close')).client, 'cli-talker')
  listener.child.kill('SIGTERM')
  assert.equal(await listener.exited, 0)
})

test('a peer alone times out with a message and exit code 1; bad arguments exit 2', async () => {
  const alone = await peer(['--worker', OURS, '--room', randomId('cli-'), '--exit-after-connect', '1', '--timeout', '3'])
  assert.equal(alone.code, 1)
  assert.match(alone.stderr, /timed out after 3 s: connected to 0 of 1 peer/)
  const missing = await peer(['--room', 'abcd'])
  assert.equal(missing.code, 2)
  assert.match(missing.stderr, /--worker and --room are required/)
  const badTurn = await peer(['--worker', OURS, '--room', 'abcd', '--turn', 'turn:x'])
  assert.equal(badTurn.code, 2)
  assert.match(badTurn.stderr, /--turn takes URL,USER,PASS/)
})

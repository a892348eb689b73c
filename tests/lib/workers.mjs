// Start and stop workers under `wrangler dev`, each with its own port, inspector port and local R2.
import { spawn } from 'node:child_process'
import { appendFileSync, mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

const ROOT = resolve(import.meta.dirname, '../..')
const WRANGLER = join(ROOT, 'node_modules/.bin/wrangler')

/**
 * Our worker (repo root wrangler.toml) and the reference (tests/reference/wrangler.toml); and both
 * behind the R2 emulation of tests/emulation/ (limits set with `vars`, see r2-limits.mjs).
 */
export const CONFIGS = {
  ours: { cwd: ROOT },
  reference: { cwd: join(ROOT, 'tests/reference') },
  'ours-emulated': { cwd: join(ROOT, 'tests/emulation'), config: 'ours.toml' },
  'reference-emulated': { cwd: join(ROOT, 'tests/emulation'), config: 'reference.toml' }
}

export async function freePort () {
  return new Promise((res, rej) => {
    const server = createServer()
    server.once('error', rej)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => res(port))
    })
  })
}

/**
 * Serve one worker. `kind` is 'ours' or 'reference'; `vars` become `--var` flags. With `restart`,
 * a `wrangler dev` that dies (it does now and then in long runs here: silently, or with an empty
 * `✘ [ERROR]`; docs/protocols.md) is started again on the same port and state, and says so on
 * stderr with its last output (and in $P2PCF_RESTART_LOG, which tests/run.mjs reads), so one
 * crash of the dev server does not fail every later suite.
 * Resolves to { url, stop, log } once the worker answers GET /.
 */
export async function startWorker (kind, { vars = {}, cwd = CONFIGS[kind].cwd, config = CONFIGS[kind].config, restart = false } = {}) {
  const port = await freePort()
  const inspectorPort = await freePort()
  const state = mkdtempSync(join(tmpdir(), `p2pcf-${kind}-`))
  const args = ['dev', '--ip', '127.0.0.1', '--port', String(port), '--inspector-port', String(inspectorPort),
    '--persist-to', state, '--show-interactive-dev-session=false', '--log-level', process.env.WRANGLER_LOG_LEVEL || 'warn']
  if (config) args.push('--config', config)
  for (const [k, v] of Object.entries(vars)) args.push('--var', `${k}:${v}`)
  const url = `http://127.0.0.1:${port}`
  let log = ''
  let child = null
  let stopped = false
  let restarts = 0
  let up = false
  const launch = () => {
    if (stopped) return
    const current = child = spawn(WRANGLER, args, {
      cwd,
      env: { ...process.env, CLOUDFLARE_CF_FETCH_ENABLED: 'false', WRANGLER_SEND_METRICS: 'false', NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true
    })
    child.stdout.on('data', d => { log += d })
    child.stderr.on('data', d => { log += d })
    child.on('exit', (code, signal) => { if (current === child) relaunch(`exited (code ${code}, signal ${signal})`) })
    up = false
    ;(async () => { // up once it answers; only then does the watchdog look at it
      while (!stopped && current === child && !up) {
        try { up = (await fetch(url + '/')).status === 200 } catch {}
        if (!up) await new Promise(resolve => setTimeout(resolve, 250))
      }
    })()
  }
  const relaunch = why => {
    if (stopped || !restart || restarts >= 5) return
    restarts++
    console.error(`[workers] ${kind} on ${url} ${why}; starting it again (${restarts}). Its last output:\n${log.slice(-2000)}`)
    // tests/run.mjs also hears of restarts of workers that a suite started itself
    if (process.env.P2PCF_RESTART_LOG) appendFileSync(process.env.P2PCF_RESTART_LOG, `${kind} ${url}\n`)
    const dead = child
    child = null
    try { process.kill(-dead.pid, 'SIGKILL') } catch {}
    setTimeout(launch, 500)
  }
  // The dev server has also died leaving its wrapper process alive for a while: a port that
  // refuses connections twice in a row, once the worker has been up, counts as an exit.
  let refused = 0
  const watchdog = restart && setInterval(async () => {
    if (!up || !child) return
    try {
      await fetch(url + '/', { signal: AbortSignal.timeout(10_000) })
      refused = 0
    } catch (err) {
      if (err?.cause?.code !== 'ECONNREFUSED') return
      if (++refused >= 2) { refused = 0; relaunch('stopped accepting connections') }
    }
  }, 1000)
  watchdog?.unref?.()
  launch()
  const stop = () => {
    stopped = true
    clearInterval(watchdog)
    try { process.kill(-child?.pid, 'SIGTERM') } catch {}
    rmSync(state, { recursive: true, force: true })
  }
  const deadline = Date.now() + 90_000
  while (Date.now() < deadline) {
    if (child?.exitCode !== null && !restart) break
    if (up) return { url, stop, log: () => log }
    await new Promise(r => setTimeout(r, 250))
  }
  stop()
  throw new Error(`${kind} worker did not start on ${url}:\n${log}`)
}

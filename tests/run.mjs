// Runs the end-to-end suites: starts our worker and the reference side by side (plus a pair with
// quotas configured), runs every tests/suites/*.test.mjs with their URLs in the environment, then
// stops them. Exit code is the suites' exit code.
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startWorker } from './lib/workers.mjs'

const QUOTA_VARS = { ALLOWED_ORIGINS: 'https://allowed.example', ORIGIN_QUOTA: '3' }
const only = process.argv.slice(2)

const started = []
let status = 1
try {
  const [ours, reference, oursQuota, referenceQuota] = await Promise.all([
    startWorker('ours', { restart: true }),
    startWorker('reference', { restart: true }),
    startWorker('ours', { vars: QUOTA_VARS, restart: true }),
    startWorker('reference', { vars: QUOTA_VARS, restart: true })
  ]).then(workers => { started.push(...workers); return workers })
  console.log(`ours ${ours.url}, reference ${reference.url}, with quotas: ${oursQuota.url}, ${referenceQuota.url}`)

  const dir = join(import.meta.dirname, 'suites')
  const files = readdirSync(dir).filter(f => f.endsWith('.test.mjs')).filter(f => only.length === 0 || only.some(o => f.includes(o)))
  // TEST_NAME_PATTERN runs only the matching tests of the chosen suites (node --test-name-pattern).
  const pattern = process.env.TEST_NAME_PATTERN ? [`--test-name-pattern=${process.env.TEST_NAME_PATTERN}`] : []
  const restartLog = join(mkdtempSync(join(tmpdir(), 'p2pcf-run-')), 'restarts')
  process.env.P2PCF_RESTART_LOG = restartLog // our workers' restarts, and those of suites' own workers
  const env = { ...process.env, OURS_URL: ours.url, REFERENCE_URL: reference.url, OURS_QUOTA_URL: oursQuota.url, REFERENCE_QUOTA_URL: referenceQuota.url }
  // One file at a time, not spawnSync: this process must stay responsive to restart a worker
  // that dies mid-run. A file that fails while a worker restarted runs again, and says so, up
  // to twice: wrangler dev exits now and then with an empty "✘ [ERROR]" (its ProxyWorker's
  // "Network connection lost", cloudflare/workers-sdk#15451), and r2-limits once lost its dev
  // server in two runs in a row. A file that fails without a restart fails at once.
  const runFile = file => new Promise(resolve => {
    const suite = spawn(process.execPath, ['--test', '--test-concurrency=1', ...pattern, join(dir, file)], { stdio: 'inherit', env })
    suite.on('exit', code => resolve(code ?? 1))
  })
  const restarts = () => existsSync(restartLog) ? readFileSync(restartLog, 'utf8').split('\n').length : 0
  const failed = []
  for (const file of files) {
    for (let attempt = 1; ; attempt++) {
      const before = restarts()
      const code = await runFile(file)
      if (code === 0) break
      await new Promise(resolve => setTimeout(resolve, 3000)) // let the watchdog see a dead worker
      if (restarts() === before || attempt === 3) {
        failed.push(file)
        break
      }
      console.error(`[run] ${file} failed while a wrangler dev was restarted (see [workers] above); running it again (${attempt + 1} of 3)`)
    }
  }
  if (failed.length) console.error(`[run] failed: ${failed.join(', ')}`)
  status = failed.length ? 1 : 0
} catch (err) {
  console.error(err)
} finally {
  for (const worker of started) worker.stop()
}
process.exit(status)

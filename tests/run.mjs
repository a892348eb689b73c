// Runs the end-to-end suites: starts our worker and the reference side by side (plus a pair with
// quotas configured), runs every tests/suites/*.test.mjs with their URLs in the environment, then
// stops them. Exit code is the suites' exit code.
import { spawn } from 'node:child_process'
import { readdirSync } from 'node:fs'
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
  // Not spawnSync: this process must stay responsive to restart a worker that exits mid-run.
  const suites = spawn(process.execPath, ['--test', '--test-concurrency=1', ...pattern, ...files.map(f => join(dir, f))], {
    stdio: 'inherit',
    env: {
      ...process.env,
      OURS_URL: ours.url,
      REFERENCE_URL: reference.url,
      OURS_QUOTA_URL: oursQuota.url,
      REFERENCE_QUOTA_URL: referenceQuota.url
    }
  })
  status = await new Promise(resolve => suites.on('exit', code => resolve(code ?? 1)))
} catch (err) {
  console.error(err)
} finally {
  for (const worker of started) worker.stop()
}
process.exit(status)

// Xen Orchestra's xen-api client on the same measurements as tests/bench/bench_cache.py:
// time to fetch every record, RSS, and the lag of each storm change (stamped "storm N t=<seconds>").
// Usage: node xen_api_bench.mjs URL USER PASSWORD CONTROL_URL RATE SECONDS  -> one JSON line
import { createClient } from 'xen-api'

const [url, user, password, control, rate, seconds] = process.argv.slice(2)
const rssMb = () => process.memoryUsage().rss / 1048576
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

const rssBefore = rssMb()
const begin = performance.now()
const xapi = createClient({ url, auth: { user, password }, allowUnauthorized: true, debounce: 0 })
await xapi.connect()
await xapi.objectsFetched
const sync = (performance.now() - begin) / 1000
const rssSynced = rssMb()
const vms = Object.values(xapi.objects.indexes.type.VM ?? {}).filter(v => !v.is_a_template && !v.is_control_domain).length

const lags = []
const last = new Map()
xapi.objects.on('update', items => {
  const now = Date.now() / 1000
  for (const [id, obj] of Object.entries(items)) {
    const desc = obj?.name_description ?? ''
    if (desc.startsWith('storm ') && desc.includes(' t=') && last.get(id) !== desc) {
      last.set(id, desc)
      lags.push(now - Number(desc.split(' t=')[1]))
    }
  }
})
await fetch(control + '/pools/0/storm', {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ rate: Number(rate), seconds: Number(seconds), seed: 3 }),
})
await sleep((Number(seconds) + 1.5) * 1000)
const done = (await (await fetch(control + '/pools/0/storm', { method: 'DELETE' })).json()).modifications
process.stdout.write(
  JSON.stringify({ sync, vms, objects: xapi.objects.size, rss_before: rssBefore, rss_synced: rssSynced, rss_end: rssMb(), lags, storm: done }) + '\n'
)
process.exit(0)

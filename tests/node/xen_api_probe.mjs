#!/usr/bin/env node
// Probe a XAPI endpoint with Xen Orchestra's `xen-api` npm client.
//
// Usage:
//   node xen_api_probe.mjs URL USER PASSWORD [VM_REF|first] [options]
// Options:
//   --actions a,b,c     VM actions to run in order (default: start,clean_shutdown when a VM is given)
//                       known: start start_paused clean_shutdown hard_shutdown clean_reboot hard_reboot
//                              suspend resume pause unpause; any other name X -> VM.X(ref)
//   --async             use xapi.callAsync (Async.VM.* + task watching) instead of xapi.call
//   --transport T       auto (default) | json-rpc | xml-rpc
//   --wait-ms N         max wait for the expected power_state after each action (default 15000)
//   --sync-ms N         max wait for the initial object sync (default 30000)
//   --timeout-ms N      global watchdog (default 120000)
//   --debounce N        ms between event.from calls (default 50; xen-api default is 200)
//   --event-poll-delay N  ms before retrying after an event.from error (default 1000; xen-api default 60000)
//
// stdout: one JSON object per line; last line is {"event":"done"} on success or
// {"event":"error",...} on failure (exit code 1). Nothing goes to the network except URL.

import { createClient } from 'xen-api'

const out = obj => process.stdout.write(JSON.stringify(obj) + '\n')

function fail(error, extra = {}) {
  out({
    event: 'error',
    ...extra,
    message: String(error?.message ?? error),
    code: error?.code,
    params: error?.params,
    call: error?.call?.method,
    name: error?.name ?? error?.constructor?.name,
  })
  process.exit(1)
}
process.on('unhandledRejection', e => fail(e, { where: 'unhandledRejection' }))
process.on('uncaughtException', e => fail(e, { where: 'uncaughtException' }))

// ---- argv -------------------------------------------------------------------
const positional = []
const opts = { actions: undefined, async: false, transport: 'auto', waitMs: 15000, syncMs: 30000, timeoutMs: 120000, debounce: 50, eventPollDelay: 1000 }
{
  const argv = process.argv.slice(2)
  for (let i = 0; i < argv.length; ++i) {
    const a = argv[i]
    const next = () => {
      if (i + 1 >= argv.length) fail(new Error(`missing value for ${a}`))
      return argv[++i]
    }
    if (a === '--actions') opts.actions = next().split(',').filter(Boolean)
    else if (a === '--async') opts.async = true
    else if (a === '--transport') opts.transport = next()
    else if (a === '--wait-ms') opts.waitMs = Number(next())
    else if (a === '--sync-ms') opts.syncMs = Number(next())
    else if (a === '--timeout-ms') opts.timeoutMs = Number(next())
    else if (a === '--debounce') opts.debounce = Number(next())
    else if (a === '--event-poll-delay') opts.eventPollDelay = Number(next())
    else if (a.startsWith('--')) fail(new Error(`unknown option ${a}`))
    else positional.push(a)
  }
}
const [url, user, password, vmArg] = positional
if (url === undefined || user === undefined || password === undefined) {
  fail(new Error('usage: node xen_api_probe.mjs URL USER PASSWORD [VM_REF|first] [--actions a,b] [--async] [--transport auto|json-rpc|xml-rpc]'))
}
const actions = opts.actions ?? (vmArg !== undefined ? ['start', 'clean_shutdown'] : [])

const watchdog = setTimeout(() => fail(new Error(`global timeout ${opts.timeoutMs}ms`), { where: 'watchdog' }), opts.timeoutMs)
watchdog.unref()

// action -> [method, extra args after ref, expected power_state]
const ACTIONS = {
  start: ['VM.start', [false, false], 'Running'],
  start_paused: ['VM.start', [true, false], 'Paused'],
  clean_shutdown: ['VM.clean_shutdown', [], 'Halted'],
  hard_shutdown: ['VM.hard_shutdown', [], 'Halted'],
  clean_reboot: ['VM.clean_reboot', [], 'Running'],
  hard_reboot: ['VM.hard_reboot', [], 'Running'],
  suspend: ['VM.suspend', [], 'Suspended'],
  resume: ['VM.resume', [false, false], 'Running'],
  pause: ['VM.pause', [], 'Paused'],
  unpause: ['VM.unpause', [], 'Running'],
}

const withTimeout = (promise, ms, what) =>
  new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timeout after ${ms}ms waiting for ${what}`)), ms)
    promise.then(
      v => (clearTimeout(t), resolve(v)),
      e => (clearTimeout(t), reject(e))
    )
  })

// ---- main -------------------------------------------------------------------
const xapi = createClient({
  url,
  auth: { user, password },
  allowUnauthorized: true, // self-signed certs on the simulator
  transport: opts.transport,
  debounce: opts.debounce,
  eventPollDelay: opts.eventPollDelay, // retry delay after a failed event.from/event.inject (xen-api default 60000)
})

// record which HTTP paths the client hits (tells JSON-RPC vs XML-RPC fallback)
const paths = new Set()
{
  const d = xapi._undiciDispatcher
  const orig = d.dispatch.bind(d)
  d.dispatch = (o, h) => {
    paths.add(`${o.method} ${o.path}`)
    return orig(o, h)
  }
}
xapi.on('eventFetchingError', e => out({ event: 'event_fetching_error', code: e?.code, message: String(e?.message ?? e) }))

try {
  await xapi.connect()
} catch (error) {
  fail(error, { where: 'connect' })
}
out({
  event: 'connected',
  status: xapi.status,
  url: `${xapi._url.protocol}//${xapi._url.hostname}${xapi._url.port ? ':' + xapi._url.port : ''}`, // differs from URL after HOST_IS_SLAVE redirect
  pool: xapi.pool.$ref,
  pool_uuid: xapi.pool.uuid,
  master: xapi.pool.master,
  types: xapi._types?.length,
  paths: [...paths],
})

try {
  await withTimeout(xapi.objectsFetched, opts.syncMs, 'initial sync (event.inject + *.get_all_records)')
} catch (error) {
  fail(error, { where: 'sync', watchEventsError: String(xapi.watchEventsError ?? '') })
}
const byType = xapi.objects.indexes.type
const counts = {}
for (const t of xapi._types ?? Object.keys(byType)) counts[t] = Object.keys(byType[t] ?? {}).length
out({ event: 'synced', total: xapi.objects.size, counts, paths: [...paths] })

if (vmArg !== undefined) {
  let vm
  if (vmArg === 'first') {
    vm = Object.values(byType.VM ?? {}).find(v => !v.is_a_template && !v.is_control_domain && !v.is_a_snapshot)
    if (vm === undefined) fail(new Error('no non-template, non-dom0 VM found'), { where: 'vm' })
  } else {
    vm = xapi.getObjectByRef(vmArg, undefined) ?? xapi.getObjectByUuid(vmArg, undefined)
    if (vm === undefined) fail(new Error(`VM ${vmArg} not in cache`), { where: 'vm' })
  }
  const ref = vm.$ref
  const id = vm.$id
  out({ event: 'vm', ref, uuid: vm.uuid, name_label: vm.name_label, power_state: vm.power_state })

  // every cache update for this VM
  let waiter
  const onChange = kind => items => {
    for (const [key, obj] of Object.entries(items)) {
      if (key !== id) continue
      const ps = obj?.power_state
      out({ event: 'vm_' + kind, ref, power_state: ps, current_operations: obj && Object.values(obj.current_operations ?? {}), resident_on: obj?.resident_on })
      if (waiter !== undefined && ps === waiter.state) waiter.resolve()
    }
  }
  xapi.objects.on('add', onChange('add'))
  xapi.objects.on('update', onChange('update'))
  xapi.objects.on('remove', onChange('remove'))

  for (const action of actions) {
    const [method, extra, expected] = ACTIONS[action] ?? [`VM.${action}`, [], undefined]
    const reached =
      expected === undefined
        ? Promise.resolve()
        : new Promise(resolve => {
            waiter = { state: expected, resolve }
          })
    const t0 = Date.now()
    let result
    try {
      result = opts.async ? await xapi.callAsync(method, ref, ...extra) : await xapi.call(method, ref, ...extra)
    } catch (error) {
      fail(error, { where: 'call', method, mode: opts.async ? 'async' : 'sync' })
    }
    out({ event: 'call_result', method, mode: opts.async ? 'async' : 'sync', result: result ?? null, ms: Date.now() - t0 })
    if (expected !== undefined && xapi.getObjectByRef(ref).power_state !== expected) {
      try {
        await withTimeout(reached, opts.waitMs, `${ref} power_state=${expected}`)
      } catch (error) {
        fail(error, { where: 'wait', method, power_state: xapi.getObjectByRef(ref, undefined)?.power_state })
      }
    }
    waiter = undefined
    out({ event: 'power_state', ref, power_state: xapi.getObjectByRef(ref).power_state, expected: expected ?? null, ms: Date.now() - t0 })
  }
}

await withTimeout(xapi.disconnect(), 5000, 'disconnect').catch(e => fail(e, { where: 'disconnect' }))
out({ event: 'disconnected', status: xapi.status })
out({ event: 'done' })
// disconnect() fires session.logout without awaiting it; give it a moment
await new Promise(resolve => setTimeout(resolve, 200))
// the event.from long-poll and undici keep-alive sockets would keep node alive for ~60s
process.exit(0)

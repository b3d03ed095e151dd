// Drive Podium's API with Xen Orchestra's own client library, xo-lib (JSON-RPC over WebSocket).
// Usage: node xo_lib_probe.mjs URL EMAIL PASSWORD [VM_ID]
// Prints JSON lines: signed_in, methods, objects, then (with a VM id) the vm.start result and the
// `all` notification that shows the VM running; last line {"event":"done"} or {"event":"error"}.
import Xo from 'xo-lib'

const XoClass = Xo.default ?? Xo
const [url, email, password, vmId] = process.argv.slice(2)
const out = obj => process.stdout.write(JSON.stringify(obj) + '\n')
const fail = (error, where) => {
  out({ event: 'error', where, message: String(error?.message ?? error), code: error?.code, data: error?.data })
  process.exit(1)
}
setTimeout(() => fail(new Error('timeout'), 'watchdog'), 60000).unref()

const xo = new XoClass({ url })
const notifications = []
let waiter
xo.on('notification', n => {
  notifications.push(n)
  if (waiter) waiter(n)
})
try {
  await xo.open()
  await xo.signIn({ email, password })
} catch (error) {
  fail(error, 'signIn')
}
out({ event: 'signed_in', user: xo.user })
const methods = await xo.call('system.getMethodsInfo').catch(e => fail(e, 'getMethodsInfo'))
out({ event: 'methods', count: Object.keys(methods).length, has: ['vm.start', 'session.signIn'].filter(m => m in methods) })
const objects = await xo.call('xo.getAllObjects', { filter: { type: 'VM' } }).catch(e => fail(e, 'getAllObjects'))
out({ event: 'objects', vms: Object.values(objects).map(v => ({ id: v.id, power_state: v.power_state })) })
try {
  await xo.call('vm.start', { id: 'not-a-vm' })
} catch (error) {
  out({ event: 'bad_call', code: error.code, message: error.message, data: error.data })
}
if (vmId !== undefined) {
  const seen = new Promise(resolve => {
    waiter = n => {
      const vm = n.params?.items?.[vmId]
      if (n.method === 'all' && n.params.type === 'enter' && vm?.power_state === 'Running') resolve(vm)
    }
  })
  const result = await xo.call('vm.start', { id: vmId }).catch(e => fail(e, 'vm.start'))
  out({ event: 'started', result })
  const vm = await seen
  out({ event: 'notified', id: vm.id, power_state: vm.power_state })
}
await xo.close()
out({ event: 'done' })
process.exit(0)

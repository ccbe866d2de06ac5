// The shop's checkout in Node.js: the checkout plug-in decides each cart's discount.
// From the repository root, after `cd sdks/node && npm install`: node examples/checkout/node/checkout.mjs
import { fileURLToPath } from 'node:url'
import { Plugin } from '../../../sdks/node/index.js'

const wasm = process.argv[2] ?? fileURLToPath(new URL('../../../target/wasm-plugins/checkout.wasm', import.meta.url))
const plugin = new Plugin({ wasm: [{ path: wasm }] })
try {
  for (const [who, isNew] of [['new customer', true], ['returning customer', false]]) {
    const cart = { cart_total: 12000, is_new_customer: isNew, provided_email: true }
    const { discount_percent: discount } = await plugin.callJson('before_checkout_finalize', cart)
    const total = cart.cart_total / 100
    console.log(`${who}: cart ${total.toFixed(2)}, discount ${discount.toFixed(1)}%, pays ${(total * (1 - discount / 100)).toFixed(2)}`)
  }
} finally {
  plugin.close()
}

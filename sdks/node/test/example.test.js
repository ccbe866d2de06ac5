'use strict'
// Runs examples/checkout/node/checkout.mjs as a user would and checks what it prints.
const test = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { execFileSync } = require('node:child_process')
const { ROOT } = require('./helper')

test('the checkout example', () => {
  const out = execFileSync(process.execPath, [path.join(ROOT, 'examples/checkout/node/checkout.mjs')], { cwd: ROOT, encoding: 'utf8' })
  assert.equal(out, 'new customer: cart 120.00, discount 20.0%, pays 96.00\nreturning customer: cart 120.00, discount 0.0%, pays 120.00\n')
})

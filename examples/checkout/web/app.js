// The checkout page: the cart is plain state in this file; every edit sends the cart to the
// store owner's checkout plug-in (plugins/rust/checkout) and shows the discount it returns.
import { Plugin } from '../../../sdks/web/dist/index.js';

const PLUGIN_URL = new URL('../../../target/wasm-plugins/checkout.wasm', import.meta.url);

const cart = {
  items: [
    { name: 'Mechanical keyboard', cents: 4500, quantity: 1 },
    { name: 'Wireless mouse', cents: 2500, quantity: 1 },
    { name: 'USB-C cable', cents: 950, quantity: 2 },
  ],
  isNewCustomer: false,
  providedEmail: false,
};

const $ = (id) => document.getElementById(id);
const dollars = (cents) => `$${(cents / 100).toFixed(2)}`;
const subtotal = () => cart.items.reduce((sum, item) => sum + item.cents * item.quantity, 0);

function renderItems() {
  const rows = cart.items.map((item, i) => {
    const row = document.createElement('tr');
    row.innerHTML = `
      <td><input type="text" class="name" aria-label="Item name"></td>
      <td class="num"><input type="number" class="price" min="0" step="0.01" aria-label="Price"></td>
      <td class="num"><input type="number" class="qty" min="0" step="1" aria-label="Quantity"></td>
      <td class="num line"></td>
      <td><button type="button" class="remove" aria-label="Remove">✕</button></td>`;
    row.querySelector('.name').value = item.name;
    row.querySelector('.price').value = (item.cents / 100).toFixed(2);
    row.querySelector('.qty').value = String(item.quantity);
    row.querySelector('.line').textContent = dollars(item.cents * item.quantity);
    row.dataset.index = String(i);
    return row;
  });
  $('items').replaceChildren(...rows);
}

// One listener for the whole table: an edited field updates its item, then the discount.
$('items').addEventListener('input', (event) => {
  const row = event.target.closest('tr');
  const item = cart.items[Number(row.dataset.index)];
  const input = event.target;
  if (input.classList.contains('name')) item.name = input.value;
  // An empty or half-typed number counts as 0 until it is a number again.
  if (input.classList.contains('price')) item.cents = Math.max(0, Math.round(Number(input.value) * 100) || 0);
  if (input.classList.contains('qty')) item.quantity = Math.max(0, Math.floor(Number(input.value)) || 0);
  row.querySelector('.line').textContent = dollars(item.cents * item.quantity);
  update();
});
$('items').addEventListener('click', (event) => {
  if (!event.target.classList.contains('remove')) return;
  cart.items.splice(Number(event.target.closest('tr').dataset.index), 1);
  renderItems();
  update();
});
$('add-item').addEventListener('click', () => {
  cart.items.push({ name: 'New item', cents: 1000, quantity: 1 });
  renderItems();
  update();
});
$('new-customer').addEventListener('change', (e) => { cart.isNewCustomer = e.target.checked; update(); });
$('provided-email').addEventListener('change', (e) => { cart.providedEmail = e.target.checked; update(); });

let plugin;
let latest = 0;

async function update() {
  if (!plugin) return;
  // Calls can finish out of order; only the newest cart's answer is shown.
  const ticket = ++latest;
  const cents = subtotal();
  const input = { cart_total: cents, is_new_customer: cart.isNewCustomer, provided_email: cart.providedEmail };
  try {
    const { discount_percent: percent } = await plugin.callJson('before_checkout_finalize', input);
    if (ticket !== latest) return;
    const off = Math.round((cents * percent) / 100);
    $('subtotal').textContent = dollars(cents);
    $('discount-percent').textContent = `${percent}%`;
    $('discount-amount').textContent = `−${dollars(off)}`;
    $('total').textContent = dollars(cents - off);
    $('result').classList.toggle('discounted', percent > 0);
    $('result').dataset.cart = `${cents}:${cart.isNewCustomer}`;
    showStatus(`Discount decided by ${PLUGIN_URL.pathname.split('/').pop()} (${plugin.fused ? 'fused' : 'not fused'} on this engine).`);
  } catch (e) {
    if (ticket === latest) showStatus(`The checkout plug-in failed: ${e.message}`, true);
  }
}

function showStatus(text, error = false) {
  $('status').textContent = text;
  $('status').classList.toggle('error', error);
}

renderItems();
try {
  plugin = await Plugin.load({ wasm: [{ url: PLUGIN_URL.href }] });
  update();
} catch (e) {
  showStatus(`Cannot load the checkout plug-in from ${PLUGIN_URL.href}: ${e.message}. Build it with \`bash scripts/build-plugins.sh\` and serve the repository root (see README.md).`, true);
}

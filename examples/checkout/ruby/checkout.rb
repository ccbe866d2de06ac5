# The shop's checkout in Ruby: the checkout plug-in decides each cart's discount.
# From the repository root: ruby -Isdks/ruby/lib examples/checkout/ruby/checkout.rb
require "plinth"

wasm = ARGV[0] || File.expand_path("../../../target/wasm-plugins/checkout.wasm", __dir__)
Plinth::Plugin.open({ wasm: [{ path: wasm }] }) do |plugin|
  { "new customer" => true, "returning customer" => false }.each do |who, is_new|
    cart = { cart_total: 12_000, is_new_customer: is_new, provided_email: true }
    discount = plugin.call_json("before_checkout_finalize", cart)["discount_percent"]
    total = cart[:cart_total] / 100.0
    puts format("%s: cart %.2f, discount %.1f%%, pays %.2f", who, total, discount, total * (1 - discount / 100))
  end
end

"""The shop's checkout in Python: the checkout plug-in decides each cart's discount.

From the repository root: python examples/checkout/python/checkout.py
"""
import pathlib
import sys

import plinth

root = pathlib.Path(__file__).resolve().parents[3]
wasm = sys.argv[1] if len(sys.argv) > 1 else root / "target/wasm-plugins/checkout.wasm"

with plinth.Plugin({"wasm": [{"path": str(wasm)}]}) as plugin:
    for who, is_new in [("new customer", True), ("returning customer", False)]:
        cart = {"cart_total": 12_000, "is_new_customer": is_new, "provided_email": True}
        discount = plugin.call_json("before_checkout_finalize", cart)["discount_percent"]
        total = cart["cart_total"] / 100
        print(f"{who}: cart {total:.2f}, discount {discount:.1f}%, pays {total * (1 - discount / 100):.2f}")

"""Rows per second through a plug-in SQL function, against the same logic as a native SQL
expression and as a Python UDF (sqlite3's create_function), over 100,000 rows, in one run.

    /usr/bin/python3 extensions/sqlite/bench.py OUT.json

The logic is the checkout rule (20% off for a new customer's cart of 10,000 or more):
- plugin: discount(json_object(...)) ->> '$.discount_percent', the checkout plug-in (Plinth PDK)
  with JSON in and out, as a user would call it;
- native: iif(new AND total >= 10000, 20.0, 0.0);
- python_udf: a Python function with the plug-in's interface (JSON text in, JSON text out);
- python_udf_args: a Python function of (total, new), the cheapest Python form;
- json_only: the JSON building and extracting of the plugin query without any call, to show
  what the JSON costs;
- plugin_echo: a plug-in call that echoes an integer (returns integer), the fixed cost of a
  plug-in call per row.
Each figure is the best of several runs. Every form's sum is checked against the native one.
"""

import json
import os
import sqlite3
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
EXTENSION = os.environ.get(
    "PLINTH_SQLITE_EXTENSION", os.path.join(ROOT, "target", "sqlite", "libplinth_sqlite.so")
)
PLUGINS = os.environ.get("PLINTH_WASM_PLUGINS", os.path.join(ROOT, "target", "wasm-plugins"))
ROWS = 100_000
RUNS = 5

CART = (
    "json_object('cart_total', total, 'is_new_customer', json(iif(new, 'true', 'false')), "
    "'provided_email', json(iif(email, 'true', 'false')))"
)
QUERIES = {
    "plugin": f"SELECT sum(discount({CART}) ->> '$.discount_percent') FROM carts",
    "native": "SELECT sum(iif(new AND total >= 10000, 20.0, 0.0)) FROM carts",
    "python_udf": f"SELECT sum(py_discount({CART}) ->> '$.discount_percent') FROM carts",
    "python_udf_args": "SELECT sum(py_discount_args(total, new)) FROM carts",
    "json_only": f"SELECT sum(iif(({CART}) ->> '$.is_new_customer' AND ({CART}) ->> '$.cart_total' >= 10000, 20.0, 0.0)) FROM carts",
    "plugin_echo": "SELECT sum(echo_int(total)) FROM carts",
}


def py_discount(text):
    cart = json.loads(text)
    percent = 20.0 if cart["is_new_customer"] and cart["cart_total"] >= 10000 else 0.0
    return json.dumps({"discount_percent": percent})


def py_discount_args(total, new):
    return 20.0 if new and total >= 10000 else 0.0


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: bench.py OUT.json")
    for path, how in [
        (EXTENSION, "bash extensions/sqlite/build.sh"),
        (os.path.join(PLUGINS, "checkout.wasm"), "bash scripts/build-plugins.sh"),
    ]:
        if not os.path.exists(path):
            sys.exit(f"bench.py: {path} is missing: build it with `{how}`")
    db = sqlite3.connect(":memory:")
    db.enable_load_extension(True)
    db.load_extension(EXTENSION)
    db.execute("CREATE TABLE carts(id INTEGER PRIMARY KEY, total INTEGER, new INTEGER, email INTEGER)")
    db.execute(
        """WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
           INSERT INTO carts SELECT i, (i * 7919) % 20000, i % 3 = 0, i % 2 FROM n""",
        (ROWS,),
    )
    db.execute(
        "SELECT plinth_register('discount', ?, 'before_checkout_finalize')",
        (os.path.join(PLUGINS, "checkout.wasm"),),
    )
    db.execute(
        "SELECT plinth_register('echo_int', ?, 'echo', '{\"returns\":\"integer\"}')",
        (os.path.join(PLUGINS, "sql_hostile.wasm"),),
    )
    db.create_function("py_discount", 1, py_discount)
    db.create_function("py_discount_args", 2, py_discount_args)

    expected = db.execute(QUERIES["native"]).fetchone()[0]
    expected_echo = db.execute("SELECT sum(total) FROM carts").fetchone()[0]
    result = {"rows": ROWS, "runs": RUNS, "sqlite_version": sqlite3.sqlite_version}
    result["plinth_version"] = db.execute("SELECT plinth_version()").fetchone()[0]
    # Which libplinth build the extension links (debug or release): the caller knows.
    result["libplinth_profile"] = os.environ.get("PLINTH_LIBPLINTH_PROFILE", "unknown")
    # Interleaved runs, so that a busy moment on the machine hits every form alike.
    best = {name: float("inf") for name in QUERIES}
    for _ in range(RUNS):
        for name, sql in QUERIES.items():
            start = time.perf_counter()
            got = db.execute(sql).fetchone()[0]
            best[name] = min(best[name], time.perf_counter() - start)
            want = expected_echo if name == "plugin_echo" else expected
            if got != want:
                sys.exit(f"bench.py: {name} summed to {got}, the native query to {want}")
    for name, seconds in best.items():
        result[f"{name}_rows_per_s"] = round(ROWS / seconds)
        result[f"{name}_ns_per_row"] = round(seconds / ROWS * 1e9, 1)
    result["plugin_over_native"] = round(best["plugin"] / best["native"], 2)
    result["plugin_over_python_udf"] = round(best["plugin"] / best["python_udf"], 2)
    with open(sys.argv[1], "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

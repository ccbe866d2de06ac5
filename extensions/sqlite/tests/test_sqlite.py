"""Tests of the plinth_sqlite extension through Python's sqlite3 module, as a Python user
would load it. Run with Debian's Python (its sqlite3 can load extensions):

    /usr/bin/python3 -m unittest discover -s extensions/sqlite/tests -v

Needs target/sqlite/libplinth_sqlite.so (extensions/sqlite/build.sh) and the plug-ins in
target/wasm-plugins (bash scripts/build-plugins.sh).
"""

import json
import os
import shutil
import sqlite3
import statistics
import tempfile
import time
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
EXTENSION = os.environ.get(
    "PLINTH_SQLITE_EXTENSION", os.path.join(ROOT, "target", "sqlite", "libplinth_sqlite.so")
)
PLUGINS = os.path.join(ROOT, "target", "wasm-plugins")
ROWS = 100_000


def plugin(name):
    path = os.path.join(PLUGINS, name + ".wasm")
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path} is missing: build the plug-ins with `bash scripts/build-plugins.sh`"
        )
    return path


def connect():
    if not os.path.exists(EXTENSION):
        raise FileNotFoundError(
            f"{EXTENSION} is missing: build it with `bash extensions/sqlite/build.sh`"
        )
    db = sqlite3.connect(":memory:")
    if not hasattr(db, "enable_load_extension"):
        raise RuntimeError("this Python's sqlite3 cannot load extensions: use /usr/bin/python3")
    db.enable_load_extension(True)
    db.load_extension(EXTENSION)
    db.enable_load_extension(False)
    return db


def make_carts(db, rows=ROWS):
    db.execute("CREATE TABLE carts(id INTEGER PRIMARY KEY, total INTEGER, new INTEGER, email INTEGER)")
    db.execute(
        """WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
           INSERT INTO carts SELECT i, (i * 7919) % 20000, i % 3 = 0, i % 2 FROM n""",
        (rows,),
    )


CART_JSON = (
    "json_object('cart_total', total, 'is_new_customer', json(iif(new, 'true', 'false')), "
    "'provided_email', json(iif(email, 'true', 'false')))"
)


class Base(unittest.TestCase):
    def setUp(self):
        self.db = connect()

    def tearDown(self):
        self.db.close()

    def one(self, sql, *args):
        return self.db.execute(sql, args).fetchone()[0]

    def register(self, name, source, export, options=None):
        if options is None:
            return self.one("SELECT plinth_register(?, ?, ?)", name, source, export)
        return self.one("SELECT plinth_register(?, ?, ?, ?)", name, source, export, json.dumps(options))

    def assert_fails(self, sql, *needles, args=()):
        with self.assertRaises(sqlite3.Error) as caught:
            self.db.execute(sql, args).fetchall()
        message = str(caught.exception)
        for needle in needles:
            self.assertIn(needle, message)
        # The connection keeps working after every failure.
        self.assertEqual(self.one("SELECT 40 + 2"), 42)
        return message


class ScalarTest(Base):
    def test_checkout_discount_over_100k_rows_matches_the_sql_rule(self):
        make_carts(self.db)
        self.assertEqual(
            self.register("discount", plugin("checkout"), "before_checkout_finalize"), "discount"
        )
        rows = self.db.execute(
            f"SELECT id, json_extract(discount({CART_JSON}), '$.discount_percent'), "
            "iif(new AND total >= 10000, 20.0, 0.0) FROM carts"
        ).fetchall()
        self.assertEqual(len(rows), ROWS)
        mismatches = [r for r in rows if r[1] != r[2]]
        self.assertEqual(mismatches, [])
        discounted = self.one("SELECT count(*) FROM carts WHERE new AND total >= 10000")
        self.assertGreater(discounted, 10_000)
        self.assertEqual(sum(1 for r in rows if r[1] == 20.0), discounted)

    def test_each_argument_type_maps_as_documented(self):
        self.register("echo", plugin("sql_hostile"), "echo")
        self.register("echo_blob", plugin("sql_hostile"), "echo", {"returns": "blob"})
        self.assertEqual(self.one("SELECT echo('héllo, wörld')"), "héllo, wörld")
        self.assertEqual(self.one("SELECT echo(42)"), "42")
        self.assertEqual(self.one("SELECT echo(-9223372036854775808)"), "-9223372036854775808")
        self.assertEqual(self.one("SELECT echo(2.5)"), "2.5")
        self.assertEqual(self.one("SELECT echo(3.0)"), "3.0")
        self.assertIsNone(self.one("SELECT echo(NULL)"))
        self.assertEqual(self.one("SELECT echo('')"), "")
        self.assertEqual(self.one("SELECT echo()"), "")
        self.assertEqual(self.one("SELECT echo_blob(x'00ff10')"), b"\x00\xff\x10")
        self.assertEqual(self.one("SELECT echo_blob(?)", b""), b"")
        self.assertEqual(self.one("SELECT echo(?)", "tab\there\nnul\x00kept"), "tab\there\nnul\x00kept")

    def test_several_arguments_are_a_json_array(self):
        self.register("echo", plugin("sql_hostile"), "echo")
        out = self.one("SELECT echo('a\"b\\c\nd', 1, 2.5, NULL, x'00ff10', -7, 1e300, 9e999)")
        self.assertEqual(json.loads(out), ['a"b\\c\nd', 1, 2.5, None, "AP8Q", -7, 1e300, None])
        self.assertEqual(self.one("SELECT echo(0.1, 1.0/3)"), "[0.1,0.33333333333333331]")
        # A 100,000-row check that several arguments reach the plug-in intact.
        make_carts(self.db)
        bad = self.one(
            "SELECT count(*) FROM carts WHERE json_extract(echo(id, 'x' || total, new), '$[0]') <> id "
            "OR json_extract(echo(id, 'x' || total, new), '$[1]') <> 'x' || total"
        )
        self.assertEqual(bad, 0)

    def test_returns_option_converts_the_output(self):
        self.register("as_int", plugin("sql_hostile"), "echo", {"returns": "integer"})
        self.register("as_real", plugin("sql_hostile"), "echo", {"returns": "real"})
        self.register("as_json", plugin("sql_hostile"), "echo", {"returns": "json", "deterministic": True})
        self.assertEqual(self.one("SELECT as_int(' 42 ') + 1"), 43)
        self.assertEqual(self.one("SELECT typeof(as_int('7'))"), "integer")
        self.assertEqual(self.one("SELECT as_real('2.25') * 2"), 4.5)
        self.assertIsNone(self.one("SELECT as_int('')"))
        self.assertEqual(self.one("""SELECT json_extract(as_json('{"a":[1,2]}'), '$.a[1]')"""), 2)
        # JSON output nests as JSON, not as a quoted string.
        self.assertEqual(self.one("""SELECT json_array(as_json('{"a":1}'))"""), '[{"a":1}]')
        self.assert_fails("SELECT as_int('12abc')", "as_int('12abc')", "is not a decimal integer")
        self.assert_fails("SELECT as_real('x')", "is not a number")
        self.assert_fails("SELECT as_json('{nope')", "not valid JSON")

    def test_config_and_limits_from_options_and_from_a_manifest_file(self):
        # count_vowels (extism-pdk) counts the characters in config "vowels".
        self.register("vowels", plugin("extism_count_vowels"), "count_vowels", {"returns": "json"})
        self.assertEqual(self.one("SELECT vowels('Hello, world') ->> '$.count'"), 3)
        self.register(
            "xyz", plugin("extism_count_vowels"), "count_vowels", {"config": {"vowels": "xyz"}, "returns": "json"}
        )
        self.assertEqual(self.one("SELECT xyz('xxyyzz a') ->> '$.count'"), 6)
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copy(plugin("extism_count_vowels"), os.path.join(tmp, "cv.wasm"))
            manifest = os.path.join(tmp, "cv.json")
            with open(manifest, "w") as f:
                json.dump({"wasm": [{"path": "cv.wasm"}], "config": {"vowels": "l"}}, f)
            # The manifest's relative path is relative to its folder, not to the working directory.
            self.register("ls", manifest, "count_vowels", {"returns": "json"})
            self.assertEqual(self.one("SELECT ls('Hello, world') ->> '$.count'"), 3)
            # Options' config is merged over the manifest's.
            self.register("ls", manifest, "count_vowels", {"returns": "json", "config": {"vowels": "o"}})
            self.assertEqual(self.one("SELECT ls('Hello, world') ->> '$.count'"), 2)
        inline = json.dumps({"wasm": [{"path": plugin("extism_count_vowels")}], "config": {"vowels": "H"}})
        self.register("hs", inline, "count_vowels", {"returns": "json"})
        self.assertEqual(self.one("SELECT hs('Hello, HH') ->> '$.count'"), 3)

    def test_registering_again_replaces_and_unregister_removes(self):
        hostile = plugin("sql_hostile")
        self.register("f", hostile, "echo")
        self.assertEqual(self.one("SELECT f('abc')"), "abc")
        self.register("F", hostile, "bad_utf8", {"returns": "blob"})
        self.assertEqual(self.one("SELECT f('abc')"), b"\xff\xfea")
        self.assertEqual(self.one("SELECT plinth_unregister('f')"), 1)
        self.assert_fails("SELECT f('abc')", "f: this plug-in function was unregistered")
        self.assert_fails("SELECT plinth_unregister('f')", "no plug-in function named 'f'")
        self.register("f", hostile, "echo")
        self.assertEqual(self.one("SELECT f('back')"), "back")
        # A scalar name cannot become an aggregate within the connection: SQLite refuses to
        # redefine a function while a statement runs.
        self.assert_fails(
            "SELECT plinth_register_aggregate('f', ?, 'median_step', 'median_final')",
            "registered as a non-deterministic scalar function",
            args=(plugin("sql_stats"),),
        )
        self.assertEqual(self.one("SELECT f('still the old one')"), "still the old one")

    def test_version(self):
        self.assertRegex(self.one("SELECT plinth_version()"), r"^plinth_sqlite \S+ \(libplinth \S+\)$")


class AggregateTest(Base):
    def setUp(self):
        super().setUp()
        make_carts(self.db)
        stats = plugin("sql_stats")
        for name, step, final, returns in [
            ("median", "median_step", "median_final", "real"),
            ("wavg", "wavg_step", "wavg_final", "real"),
            ("joined", "join_step", "join_final", "text"),
        ]:
            self.one(
                "SELECT plinth_register_aggregate(?, ?, ?, ?, ?)", name, stats, step, final,
                json.dumps({"returns": returns}),
            )

    def test_median_of_100k_rows_matches_python(self):
        totals = [r[0] for r in self.db.execute("SELECT total FROM carts")]
        self.assertEqual(len(totals), ROWS)
        self.assertEqual(self.one("SELECT median(total) FROM carts"), statistics.median(totals))
        # An even count, and NULLs skipped as sum() skips them.
        self.assertEqual(self.one("SELECT median(iif(id <= 4, id, NULL)) FROM carts"), 2.5)
        self.assertIsNone(self.one("SELECT median(total) FROM carts WHERE id < 0"))

    def test_groups_get_fresh_instances(self):
        rows = self.db.execute(
            "SELECT new, median(total), joined(id) FROM (SELECT * FROM carts WHERE id <= 9) GROUP BY new"
        ).fetchall()
        totals = {i: i * 7919 % 20000 for i in range(1, 10)}
        self.assertEqual(
            rows,
            [
                (0, statistics.median(totals[i] for i in (1, 2, 4, 5, 7, 8)), "1,2,4,5,7,8"),
                (1, statistics.median(totals[i] for i in (3, 6, 9)), "3,6,9"),
            ],
        )
        # Per-group results over all rows match SQL's own.
        plug = self.db.execute("SELECT id % 7, median(total) FROM carts GROUP BY id % 7").fetchall()
        for group, med in plug:
            totals = [r[0] for r in self.db.execute("SELECT total FROM carts WHERE id % 7 = ?", (group,))]
            self.assertEqual(med, statistics.median(totals))

    def test_several_arguments_weighted_average(self):
        got = self.one("SELECT wavg(total, id % 5) FROM carts")
        want = self.one("SELECT CAST(sum(total * (id % 5)) AS REAL) / sum(id % 5) FROM carts")
        self.assertAlmostEqual(got, want, places=6)

    def test_extism_pdk_aggregate(self):
        self.one(
            "SELECT plinth_register_aggregate('longest', ?, 'longest_step', 'longest_final')",
            plugin("extism_sql_longest"),
        )
        got = self.one("SELECT longest('w' || total || iif(id % 1000 = 0, 'long', '')) FROM carts")
        want = self.one(
            "SELECT s FROM (SELECT id, 'w' || total || iif(id % 1000 = 0, 'long', '') AS s FROM carts) "
            "ORDER BY length(s) DESC, id LIMIT 1"
        )
        self.assertEqual(got, want)

    def test_failing_step_names_the_row_and_the_connection_recovers(self):
        message = self.assert_fails(
            "SELECT median(iif(id = 777, 'oops', total)) FROM carts",
            "median('oops')",
            "sql_stats.wasm",
            "median_step",
            "not a number",
        )
        self.assertNotIn("\n", message)
        self.assertEqual(self.one("SELECT median(total) FROM carts WHERE id <= 3"), 7919)  # of 7919, 15838, 3757

    def test_missing_final_export(self):
        self.assert_fails(
            "SELECT plinth_register_aggregate('m2', ?, 'median_step', 'no_such_final')",
            "has no export named no_such_final",
            args=(plugin("sql_stats"),),
        )


class ErrorTest(Base):
    def setUp(self):
        super().setUp()
        self.hostile = plugin("sql_hostile")

    def test_trap_names_function_plugin_export_and_row(self):
        self.register("boom", self.hostile, "trap")
        message = self.assert_fails(
            "SELECT boom('row 1', 2, x'ff') FROM (SELECT 1)",
            "boom('row 1', 2, x'ff')",
            "sql_hostile.wasm",
            "export trap",
            "trap",
            "call 1",
        )
        self.assertIn("call 2", self.assert_fails("SELECT boom(1)", "boom(1)"))
        self.assertTrue(message)

    def test_guest_error_then_the_same_function_serves_again(self):
        self.register("discount", plugin("checkout"), "before_checkout_finalize")
        self.assert_fails("SELECT discount('not json')", "discount('not json')", "checkout.wasm")
        self.assertEqual(
            self.one(
                """SELECT discount('{"cart_total":12000,"is_new_customer":true,"provided_email":true}')"""
            ),
            '{"discount_percent":20.0}',
        )

    def test_endless_loop_is_stopped_by_the_timeout(self):
        self.register("spin", self.hostile, "spin", {"timeout_ms": 200})
        started = time.monotonic()
        self.assert_fails("SELECT spin()", "spin()", "timeout", "timeout_ms")
        self.assertLess(time.monotonic() - started, 30)  # generous: only that it ended
        self.assert_fails("SELECT spin()", "timeout")

    def test_endless_loop_with_the_default_timeout(self):
        self.register("spin", self.hostile, "spin")
        self.assert_fails("SELECT spin()", "timeout")

    def test_endless_loop_is_stopped_by_fuel(self):
        self.register("spin", self.hostile, "spin", {"fuel": 1_000_000, "timeout_ms": 60_000})
        self.assert_fails("SELECT spin()", "fuel")

    def test_endless_memory_growth_is_stopped(self):
        self.register("grow", self.hostile, "grow", {"max_pages": 64})
        message = self.assert_fails("SELECT grow()", "grow()", "export grow")
        self.assertRegex(message, "memory")
        self.register("echo", self.hostile, "echo")
        self.assertEqual(self.one("SELECT echo('fine')"), "fine")

    def test_endless_memory_growth_meets_the_default_limit(self):
        self.register("grow", self.hostile, "grow")
        self.assert_fails("SELECT grow()", "out_of_memory", "4096 pages")

    def test_huge_output(self):
        # This case is about sizes, not time: with the debug libplinth on a busy machine,
        # writing 50 MB through the ABI can take longer than the default 1 s limit.
        self.register("huge", self.hostile, "huge", {"returns": "blob", "timeout_ms": 60_000})
        self.assertEqual(self.one("SELECT length(huge(50000000))"), 50_000_000)
        self.db.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 1_000_000)
        self.assert_fails("SELECT huge(2000000)", "2000000 bytes, over SQLite's length limit of 1000000")
        self.assertEqual(self.one("SELECT length(huge(1000))"), 1000)

    def test_control_characters_in_errors_are_escaped(self):
        self.register("ctrl", self.hostile, "ctrl_error")
        message = self.assert_fails("SELECT ctrl('arg\nwith\x1bescape')", "line1\\nline2\\ttab\\x1b[31mred\\x07bell")
        self.assertIn("ctrl('arg\\nwith\\x1bescape')", message)
        self.assertFalse(any(ord(c) < 0x20 for c in message), repr(message))

    def test_long_arguments_are_truncated_in_errors(self):
        self.register("ctrl", self.hostile, "ctrl_error")
        message = self.assert_fails("SELECT ctrl(?)", "(10000 bytes)", args=("y" * 10_000,))
        self.assertLess(len(message), 4000)

    def test_bad_utf8_output_needs_returns_blob(self):
        self.register("bad", self.hostile, "bad_utf8")
        self.assert_fails("SELECT bad()", "not valid UTF-8", "returns")

    def test_missing_export(self):
        self.assert_fails(
            "SELECT plinth_register('x', ?, 'nope')", "checkout.wasm has no export named nope",
            args=(plugin("checkout"),),
        )

    def test_bad_files(self):
        self.assert_fails(
            "SELECT plinth_register('x', '/nonexistent/p.wasm', 'f')",
            "cannot open plug-in file /nonexistent/p.wasm",
        )
        with tempfile.NamedTemporaryFile(suffix=".wasm") as f:
            f.write(b"\x00asm garbage")
            f.flush()
            self.assert_fails("SELECT plinth_register('x', ?, 'f')", "cannot load plug-in", args=(f.name,))
        bad_hash = json.dumps({"wasm": [{"path": plugin("checkout"), "hash": "00" * 32}]})
        self.assert_fails("SELECT plinth_register('x', ?, 'f')", "cannot load plug-in", "manifest", args=(bad_hash,))
        self.assert_fails("SELECT plinth_register('x', '{not json', 'f')", "not a JSON object")
        with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
            f.write("{ broken")
            f.flush()
            self.assert_fails(
                "SELECT plinth_register('x', ?, 'f')", f"the manifest in {f.name} is not a JSON object",
                args=(f.name,),
            )

    def test_bad_options(self):
        args = (plugin("checkout"),)
        sql = "SELECT plinth_register('x', ?, 'before_checkout_finalize', ?)"
        self.assert_fails(sql, 'unknown option "colour"', args=args + ('{"colour":"red"}',))
        self.assert_fails(sql, "must be a positive integer", args=args + ('{"timeout_ms":-5}',))
        self.assert_fails(sql, "must be a positive integer", args=args + ('{"fuel":"lots"}',))
        self.assert_fails(sql, "returns must be one of", args=args + ('{"returns":"date"}',))
        self.assert_fails(sql, "must be a string", args=args + ('{"config":{"a":1}}',))
        self.assert_fails(sql, "must be a JSON object", args=args + ("[1]",))
        self.assert_fails(sql, "must be a JSON object", args=args + ("nope",))
        self.assert_fails(sql, "must be true or false", args=args + ('{"deterministic":1}',))
        self.assertEqual(self.one(sql, *args, "{}"), "x")

    def test_bad_register_arguments(self):
        self.assert_fails("SELECT plinth_register('x')", "takes 3 or 4 arguments")
        self.assert_fails("SELECT plinth_register(1, 'a', 'b')", "name (argument 1) must be text")
        self.assert_fails("SELECT plinth_register('no spaces', 'a', 'b')", "letters, digits and _")
        self.assert_fails("SELECT plinth_register('plinth_x', 'a', 'b')", "not start with plinth_")

    def test_random_registrations_and_calls_never_crash(self):
        import random

        rng = random.Random(18)
        names = ["f", "g", "F", "_ok"] * 5 + ["", "a b", "x" * 100, "plinth_f", None, 7, b"\x00"]
        sources = [plugin("sql_hostile")] * 20 + [
            plugin("checkout"), plugin("sql_stats"), "/", "/nonexistent",
            "{", "{}", '{"wasm":[]}', '{"wasm":[{"data":"AGFzbQEAAAA="}]}', '{"wasm":"x"}',
            '{"wasm":[{"path":"/"}]}', "", None, 3.5, b"\x00asm",
        ]
        exports = ["echo"] * 10 + ["trap", "huge", "ctrl_error", "bad_utf8", "median_step", "nope", "", None]
        options = [
            None, "{}", '{"returns":"json"}', '{"returns":"blob"}', '{"returns":"integer"}',
            '{"timeout_ms":50}', '{"fuel":1}', '{"max_pages":1}', '{"config":{}}', '{"config":[]}',
            "[]", "null", "1", '{"":1}', '{"timeout_ms":1e99}', '{"max_pages":99999999}', b"{}",
        ]
        args = [None, 0, -1, 2.5, "", "text", "\x00\x01", b"", b"\xff" * 100, "9" * 30, "1e999"]
        outcomes = {}
        for _ in range(400):
            sql = rng.choice(["register", "register", "aggregate", "call", "call", "call", "unregister"])
            try:
                if sql == "register":
                    picked = [rng.choice(names), rng.choice(sources), rng.choice(exports)]
                    if rng.random() < 0.5:
                        picked.append(rng.choice(options))
                    self.db.execute(f"SELECT plinth_register({', '.join('?' * len(picked))})", picked).fetchall()
                elif sql == "aggregate":
                    picked = [rng.choice(names), rng.choice(sources), rng.choice(exports), rng.choice(exports)]
                    self.db.execute("SELECT plinth_register_aggregate(?, ?, ?, ?)", picked).fetchall()
                elif sql == "call":
                    n = rng.randrange(0, 4)
                    fn = rng.choice(["f", "g", "_ok"])
                    picked = [rng.choice(args) for _ in range(n)]
                    inner = ", ".join("?" * n)
                    self.db.execute(f"SELECT {fn}({inner}) FROM (SELECT 1 UNION ALL SELECT 2)", picked).fetchall()
                else:
                    self.db.execute("SELECT plinth_unregister(?)", [rng.choice(names)]).fetchall()
            except sqlite3.Error:
                outcomes[sql + " failed"] = outcomes.get(sql + " failed", 0) + 1
            else:
                outcomes[sql + " ok"] = outcomes.get(sql + " ok", 0) + 1
            self.assertEqual(self.one("SELECT 1"), 1)
        # The mix reaches the plug-ins, not only the argument checks.
        self.assertGreater(outcomes.get("register ok", 0), 10, outcomes)
        self.assertGreater(outcomes.get("call ok", 0), 20, outcomes)

    def test_registering_cannot_run_from_a_view_or_trigger(self):
        self.db.execute("CREATE VIEW v AS SELECT plinth_register('x', 'a.wasm', 'f')")
        self.assert_fails("SELECT * FROM v", "unsafe use of plinth_register")


if __name__ == "__main__":
    unittest.main()

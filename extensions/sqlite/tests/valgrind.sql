-- A short run of every path (scalar, aggregate, replace, unregister, errors) for valgrind:
-- ../test.sh checks that the extension leaks nothing and touches no freed memory.
.bail off
.load target/sqlite/libplinth_sqlite
CREATE TABLE t(id INTEGER PRIMARY KEY, x);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)
INSERT INTO t SELECT i, i * 3 % 17 FROM n;
SELECT plinth_register('echo', 'target/wasm-plugins/sql_hostile.wasm', 'echo');
SELECT count(*) FROM t WHERE echo(x) = CAST(x AS TEXT) AND echo(id, x, 'a', NULL, x'00') IS NOT NULL;
SELECT plinth_register('echo', 'target/wasm-plugins/sql_hostile.wasm', 'echo', '{"returns":"integer"}');
SELECT sum(echo(x)) = sum(x) FROM t;
SELECT plinth_register_aggregate('median', 'target/wasm-plugins/sql_stats.wasm', 'median_step', 'median_final', '{"returns":"real"}');
SELECT x % 3, median(x) FROM t GROUP BY x % 3;
SELECT median(iif(id = 50, 'bad', x)) FROM t;
SELECT median(x) FROM t WHERE id < 0;
SELECT plinth_register('ctrl', 'target/wasm-plugins/sql_hostile.wasm', 'ctrl_error');
SELECT ctrl(x) FROM t;
SELECT plinth_register('bad', 'target/wasm-plugins/sql_hostile.wasm', 'bad_utf8');
SELECT bad();
SELECT plinth_register('x', 'target/wasm-plugins/nope.wasm', 'f');
SELECT plinth_register('x', 'target/wasm-plugins/checkout.wasm', 'f');
SELECT plinth_register('x', 'target/wasm-plugins/checkout.wasm', 'before_checkout_finalize', '{"colour":1}');
SELECT plinth_unregister('echo');
SELECT echo(1);
SELECT plinth_version() IS NOT NULL;

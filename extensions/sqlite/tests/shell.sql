-- The extension through Debian's sqlite3 shell, run from the repository root by ../test.sh:
--   sqlite3 :memory: < extensions/sqlite/tests/shell.sql
-- Every check prints a label and the number of rows where the plug-in and an independent
-- SQL expression disagree (or the value to compare); test.sh diffs this with shell.expected.
.bail on
.load target/sqlite/libplinth_sqlite
.mode list
.separator " "

CREATE TABLE carts(id INTEGER PRIMARY KEY, total INTEGER, new INTEGER, email INTEGER);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)
INSERT INTO carts SELECT i, (i * 7919) % 20000, i % 3 = 0, i % 2 FROM n;
SELECT 'rows', count(*) FROM carts;

-- A scalar function from the checkout plug-in (Plinth PDK), with JSON results.
SELECT 'registered', plinth_register('discount', 'target/wasm-plugins/checkout.wasm',
  'before_checkout_finalize', '{"returns":"json","deterministic":true}');
SELECT 'discount_mismatches', count(*) FROM carts
WHERE discount(json_object('cart_total', total,
        'is_new_customer', json(iif(new, 'true', 'false')),
        'provided_email', json(iif(email, 'true', 'false')))) ->> '$.discount_percent'
   <> iif(new AND total >= 10000, 20.0, 0.0);
SELECT 'discounted', count(*) FROM carts
WHERE discount(json_object('cart_total', total, 'is_new_customer', json(iif(new, 'true', 'false')),
        'provided_email', json('true'))) ->> '$.discount_percent' = 20.0;
SELECT 'discounted_sql', count(*) FROM carts WHERE new AND total >= 10000;

-- A scalar function from a plug-in written with the published extism-pdk, with config.
SELECT 'registered', plinth_register('vowels', 'target/wasm-plugins/extism_count_vowels.wasm',
  'count_vowels', '{"returns":"json","config":{"vowels":"0123456789"}}');
SELECT 'digit_mismatches', count(*) FROM carts
WHERE vowels(CAST(total AS TEXT)) ->> '$.count' <> length(CAST(total AS TEXT));

-- Aggregates: median (Plinth PDK) against the middle row by ORDER BY, longest (extism-pdk).
SELECT 'registered', plinth_register_aggregate('median', 'target/wasm-plugins/sql_stats.wasm',
  'median_step', 'median_final', '{"returns":"real"}');
SELECT 'median', median(total) = (SELECT (SELECT total FROM carts ORDER BY total LIMIT 1 OFFSET 49999)
  / 2.0 + (SELECT total FROM carts ORDER BY total LIMIT 1 OFFSET 50000) / 2.0) FROM carts;
SELECT 'registered', plinth_register_aggregate('longest', 'target/wasm-plugins/extism_sql_longest.wasm',
  'longest_step', 'longest_final');
SELECT 'longest_mismatches', count(*) FROM (
  SELECT id % 10 AS g, longest(printf('%.*c', total % 97, 'x') || id) AS got FROM carts GROUP BY g
) WHERE length(got) <> (SELECT max(length(printf('%.*c', total % 97, 'x') || id)) FROM carts WHERE id % 10 = g);

-- A failing row is an error; with .bail off the shell goes on, and so does the connection.
.bail off
SELECT 'registered', plinth_register('spin', 'target/wasm-plugins/sql_hostile.wasm', 'spin', '{"timeout_ms":100}');
SELECT 'spin', spin();
SELECT 'after_error', count(*) FROM carts WHERE discount(json_object('cart_total', total,
  'is_new_customer', json('true'), 'provided_email', json('true'))) ->> '$.discount_percent' = 20.0;
SELECT 'after_error_sql', count(*) FROM carts WHERE total >= 10000;

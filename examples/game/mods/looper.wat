;; A broken mod, for trying the game's budget: its on_tick loops for ever. The game stops it
;; when its fuel for the tick runs out, skips it, and disables it after 3 failures in a row.
(module
  (memory (export "memory") 1)
  (func (export "on_tick") (result i32)
    (loop $forever (br $forever))
    (i32.const 0)))

;; `run` grows memory by 100 pages and traps when the host refuses.
(module
  (memory (export "memory") 1)
  (func (export "run") (result i32)
    (if (i32.eq (memory.grow (i32.const 100)) (i32.const -1)) (then unreachable))
    (i32.const 0)))

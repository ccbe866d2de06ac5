;; `run` fails with code 3 and sets no error message.
(module
  (memory (export "memory") 1)
  (func (export "run") (result i32) (i32.const 3)))

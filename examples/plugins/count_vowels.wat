;; count_vowels: a hand-written Extism plug-in (a reactor: no _start, only exports).
;;
;; Counts the vowels of its input, adds them to the running total kept in var "total"
;; (8 bytes, little-endian) and outputs {"count":N,"total":T,"vowels":"..."}.
;; The vowel set is config key "vowels" if set, else "aeiouAEIOU"; it is matched byte by byte.
;;
;;   plinth call examples/plugins/count_vowels.wat count_vowels --input "Hello, world"
(module
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "input_load_u8" (func $input_load_u8 (param i64) (result i32)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "length" (func $length (param i64) (result i64)))
  (import "extism:host/env" "load_u8" (func $load_u8 (param i64) (result i32)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (import "extism:host/env" "config_get" (func $config_get (param i64) (result i64)))
  (import "extism:host/env" "var_get" (func $var_get (param i64) (result i64)))
  (import "extism:host/env" "var_set" (func $var_set (param i64 i64)))

  ;; Linear memory layout:
  ;;   0..96     constant strings (below)
  ;;   96..112   scratch for the 8-byte total
  ;;   256..512  lookup table: byte -> 1 if it is a vowel
  ;;   1024..    the configured vowel set, then the output being built
  (memory (export "memory") 1)
  (data (i32.const 0) "vowels")
  (data (i32.const 8) "total")
  (data (i32.const 16) "aeiouAEIOU")
  (data (i32.const 32) "{\"count\":")
  (data (i32.const 48) ",\"total\":")
  (data (i32.const 64) ",\"vowels\":\"")
  (data (i32.const 80) "\"}")

  ;; Grows linear memory so that addresses below $end are usable.
  (func $ensure (param $end i32)
    (local $have i32)
    (local.set $have (i32.mul (memory.size) (i32.const 65536)))
    (if (i32.gt_u (local.get $end) (local.get $have))
      (then
        (if (i32.eq
              (memory.grow (i32.div_u (i32.add (i32.sub (local.get $end) (local.get $have))
                                               (i32.const 65535))
                                      (i32.const 65536)))
              (i32.const -1))
          (then unreachable)))))

  ;; Copies linear memory [$ptr, $ptr+$len) into a new Extism block and returns its handle.
  (func $to_extism (param $ptr i32) (param $len i32) (result i64)
    (local $h i64)
    (local $i i32)
    (local.set $h (call $alloc (i64.extend_i32_u (local.get $len))))
    (block $done
      (loop $copy
        (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
        (call $store_u8
          (i64.add (local.get $h) (i64.extend_i32_u (local.get $i)))
          (i32.load8_u (i32.add (local.get $ptr) (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $copy)))
    (local.get $h))

  ;; Copies $len bytes of the Extism block $h to linear memory at $dst.
  (func $from_extism (param $h i64) (param $dst i32) (param $len i32)
    (local $i i32)
    (block $done
      (loop $copy
        (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
        (i32.store8
          (i32.add (local.get $dst) (local.get $i))
          (call $load_u8 (i64.add (local.get $h) (i64.extend_i32_u (local.get $i)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $copy))))

  ;; memcpy that returns the end of what it wrote, to chain the pieces of the output.
  (func $put (param $dst i32) (param $src i32) (param $len i32) (result i32)
    (memory.copy (local.get $dst) (local.get $src) (local.get $len))
    (i32.add (local.get $dst) (local.get $len)))

  ;; Writes $v in decimal at $dst; returns the end.
  (func $put_u64 (param $dst i32) (param $v i64) (result i32)
    (local $digits i32)
    (local $t i64)
    (local $p i32)
    ;; Count the digits first so they can be written from the right.
    (local.set $digits (i32.const 1))
    (local.set $t (local.get $v))
    (block $counted
      (loop $count
        (br_if $counted (i64.lt_u (local.get $t) (i64.const 10)))
        (local.set $t (i64.div_u (local.get $t) (i64.const 10)))
        (local.set $digits (i32.add (local.get $digits) (i32.const 1)))
        (br $count)))
    (local.set $p (i32.add (local.get $dst) (local.get $digits)))
    (loop $write
      (local.set $p (i32.sub (local.get $p) (i32.const 1)))
      (i32.store8 (local.get $p)
        (i32.add (i32.const 48) (i32.wrap_i64 (i64.rem_u (local.get $v) (i64.const 10)))))
      (local.set $v (i64.div_u (local.get $v) (i64.const 10)))
      (br_if $write (i32.gt_u (local.get $p) (local.get $dst))))
    (i32.add (local.get $dst) (local.get $digits)))

  ;; One hex digit of $n (0..15), lowercase.
  (func $hex (param $n i32) (result i32)
    (select
      (i32.add (i32.const 48) (local.get $n))
      (i32.add (i32.const 87) (local.get $n))
      (i32.lt_u (local.get $n) (i32.const 10))))

  ;; Writes [$src, $src+$len) as the inside of a JSON string; returns the end.
  (func $put_json_str (param $dst i32) (param $src i32) (param $len i32) (result i32)
    (local $end i32)
    (local $b i32)
    (local.set $end (i32.add (local.get $src) (local.get $len)))
    (block $done
      (loop $each
        (br_if $done (i32.ge_u (local.get $src) (local.get $end)))
        (local.set $b (i32.load8_u (local.get $src)))
        (if (i32.or (i32.eq (local.get $b) (i32.const 34)) (i32.eq (local.get $b) (i32.const 92)))
          (then ;; " and \ get a backslash
            (i32.store8 (local.get $dst) (i32.const 92))
            (i32.store8 offset=1 (local.get $dst) (local.get $b))
            (local.set $dst (i32.add (local.get $dst) (i32.const 2))))
          (else
            (if (i32.lt_u (local.get $b) (i32.const 32))
              (then ;; control characters become \u00XX
                (i32.store8 (local.get $dst) (i32.const 92))
                (i32.store8 offset=1 (local.get $dst) (i32.const 117))
                (i32.store8 offset=2 (local.get $dst) (i32.const 48))
                (i32.store8 offset=3 (local.get $dst) (i32.const 48))
                (i32.store8 offset=4 (local.get $dst) (call $hex (i32.shr_u (local.get $b) (i32.const 4))))
                (i32.store8 offset=5 (local.get $dst) (call $hex (i32.and (local.get $b) (i32.const 15))))
                (local.set $dst (i32.add (local.get $dst) (i32.const 6))))
              (else
                (i32.store8 (local.get $dst) (local.get $b))
                (local.set $dst (i32.add (local.get $dst) (i32.const 1)))))))
        (local.set $src (i32.add (local.get $src) (i32.const 1)))
        (br $each)))
    (local.get $dst))

  (func (export "count_vowels") (result i32)
    (local $h i64)
    (local $vptr i32)
    (local $vlen i32)
    (local $i i64)
    (local $n i64)
    (local $k i32)
    (local $count i64)
    (local $total i64)
    (local $out i32)
    (local $p i32)

    ;; The vowel set: config "vowels" (config_get frees the key block) or the default.
    (local.set $h (call $config_get (call $to_extism (i32.const 0) (i32.const 6))))
    (if (i64.eqz (local.get $h))
      (then
        (local.set $vptr (i32.const 16))
        (local.set $vlen (i32.const 10)))
      (else
        (local.set $vptr (i32.const 1024))
        (local.set $vlen (i32.wrap_i64 (call $length (local.get $h))))
        (call $ensure (i32.add (local.get $vptr) (local.get $vlen)))
        (call $from_extism (local.get $h) (local.get $vptr) (local.get $vlen))))

    ;; Linear memory persists between calls, so rebuild the table every time.
    (memory.fill (i32.const 256) (i32.const 0) (i32.const 256))
    (block $built
      (loop $mark
        (br_if $built (i32.ge_u (local.get $k) (local.get $vlen)))
        (i32.store8 offset=256 (i32.load8_u (i32.add (local.get $vptr) (local.get $k))) (i32.const 1))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br $mark)))

    (local.set $n (call $input_length))
    (block $counted
      (loop $scan
        (br_if $counted (i64.ge_u (local.get $i) (local.get $n)))
        (local.set $count
          (i64.add (local.get $count)
            (i64.load8_u offset=256 (call $input_load_u8 (local.get $i)))))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $scan)))

    ;; Running total in var "total"; anything but 8 bytes counts as no total yet.
    (local.set $h (call $var_get (call $to_extism (i32.const 8) (i32.const 5))))
    (if (i64.eq (call $length (local.get $h)) (i64.const 8))
      (then
        (call $from_extism (local.get $h) (i32.const 96) (i32.const 8))
        (local.set $total (i64.load (i32.const 96)))))
    (local.set $total (i64.add (local.get $total) (local.get $count)))
    (i64.store (i32.const 96) (local.get $total))
    (call $var_set
      (call $to_extism (i32.const 8) (i32.const 5))
      (call $to_extism (i32.const 96) (i32.const 8)))

    ;; Output after the vowel copy; worst case 6 bytes per escaped vowel byte.
    (local.set $out (i32.add (i32.const 1024) (local.get $vlen)))
    (call $ensure
      (i32.add (local.get $out) (i32.add (i32.const 128) (i32.mul (local.get $vlen) (i32.const 6)))))
    (local.set $p (call $put (local.get $out) (i32.const 32) (i32.const 9)))
    (local.set $p (call $put_u64 (local.get $p) (local.get $count)))
    (local.set $p (call $put (local.get $p) (i32.const 48) (i32.const 9)))
    (local.set $p (call $put_u64 (local.get $p) (local.get $total)))
    (local.set $p (call $put (local.get $p) (i32.const 64) (i32.const 11)))
    (local.set $p (call $put_json_str (local.get $p) (local.get $vptr) (local.get $vlen)))
    (local.set $p (call $put (local.get $p) (i32.const 80) (i32.const 2)))

    (local.set $n (i64.extend_i32_u (i32.sub (local.get $p) (local.get $out))))
    (call $output_set
      (call $to_extism (local.get $out) (i32.wrap_i64 (local.get $n)))
      (local.get $n))
    (i32.const 0))
)

(module
  (import "wasi_snapshot_preview1" "clock_time_get"
    (func $clock_time_get (param i32 i64 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "wasm")  ;; the secret: 4 bytes the caller never sees
  ;; check: compares the 4 bytes at 0 with the secret, a slow byte at a time, and stops at
  ;; the first difference (like a naive password check)
  (func $check (result i32) (local $i i32) (local $spin i32)
    (block $differ
      (loop $next
        (br_if $differ (i32.ne (i32.load8_u (local.get $i))
                               (i32.load8_u (i32.add (i32.const 16) (local.get $i)))))
        (local.set $spin (i32.const 100000))  ;; work per matching byte
        (loop $busy
          (local.set $spin (i32.sub (local.get $spin) (i32.const 1)))
          (br_if $busy (local.get $spin)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $next (i32.lt_u (local.get $i) (i32.const 4))))
      (return (i32.const 1)))
    (i32.const 0))
  (func $now (result i64)
    (drop (call $clock_time_get (i32.const 1) (i64.const 1) (i32.const 32)))  ;; monotonic
    (i64.load (i32.const 32)))
  ;; timed(guess): the guess's 4 bytes (little-endian in an i32), checked; returns the
  ;; nanoseconds check took, measured with the clock every guest is granted
  (func (export "timed") (param $guess i32) (result i64) (local $t0 i64)
    (i32.store (i32.const 0) (local.get $guess))
    (local.set $t0 (call $now))
    (drop (call $check))
    (i64.sub (call $now) (local.get $t0))))

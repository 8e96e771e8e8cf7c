"""WAT programs shared by the tests: each one shows one behaviour of a guest."""

FACT = """(module
  (func $fact (export "fact") (param i64) (result i64)
    (if (result i64) (i64.eqz (local.get 0))
      (then (i64.const 1))
      (else (i64.mul (local.get 0) (call $fact (i64.sub (local.get 0) (i64.const 1))))))))"""

ADD = """(module (func (export "add") (param i32 i32) (result i32)
  (i32.add (local.get 0) (local.get 1))))"""

LOOP = """(module (func (export "spin") (loop (br 0))))"""

#: A loop that calls a function each round, so fuel is visible while it runs.
CALLING_LOOP = """(module
  (func $step (param i64) (result i64) (i64.add (local.get 0) (i64.const 1)))
  (func (export "spin") (local i64)
    (loop (local.set 0 (call $step (local.get 0))) (br 0))))"""

RECURSE = """(module (func $r (export "recurse") (call $r)))"""

GROW = """(module (memory (export "memory") 1)
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))"""

BIG_MEMORY = """(module (memory (export "memory") 20) (func (export "f")))"""

TRAP = """(module (func (export "boom") unreachable))"""

HELLO = r"""(module
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello, sandbox\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 15))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"""

#: Sleeps 10 s through poll_oneoff with one relative clock subscription.
SLEEP_10S = r"""(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (i32.store8 (i32.const 8) (i32.const 0))            ;; tag: clock
    (i32.store (i32.const 16) (i32.const 1))            ;; clock id: monotonic
    (i64.store (i32.const 24) (i64.const 10000000000))  ;; timeout: 10 s
    (drop (call $poll (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128)))))"""

#: Exits through WASI proc_exit with the code given.
EXIT = """(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (call $exit (i32.const 3))))"""

#: Imports something the sandbox does not provide.
FOREIGN_IMPORT = """(module (import "env" "launch_missiles" (func)) (func (export "f")))"""

#: Copies stdin to stdout (one read, one write).
ECHO = r"""(module
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const 4096))
    (drop (call $read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
    (i32.store (i32.const 4) (i32.load (i32.const 8)))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"""

#: Opens ``fifo`` in the first preopened directory for reading: open(2) on a FIFO blocks
#: in the host until a writer comes, where no epoch check can reach it.
#: Creates ``ready`` in its granted directory (fd 3), then opens ``fifo`` there for reading
#: until it exists: a FIFO planted after the grant's scan blocks the open with no writer.
OPEN_FIFO = r"""(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "fifo")
  (data (i32.const 32) "ready")
  (func (export "_start")
    (drop (call $open (i32.const 3) (i32.const 0) (i32.const 32) (i32.const 5)
      (i32.const 1) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 64)))
    (loop $again
      (br_if $again (call $open (i32.const 3) (i32.const 0) (i32.const 16) (i32.const 4)
        (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 64))))))"""

#: Exception handling (WebAssembly 3.0): ``safe`` doubles its argument, or catches the
#: exception ``risky`` throws above 10 and returns 1000 + the thrown value.
TRY_TABLE = """(module
  (tag $oops (param i32))
  (func $risky (param i32) (result i32)
    (if (i32.gt_s (local.get 0) (i32.const 10)) (then (throw $oops (local.get 0))))
    (i32.mul (local.get 0) (i32.const 2)))
  (func (export "safe") (param i32) (result i32)
    (block $caught (result i32)
      (try_table (result i32) (catch $oops $caught) (call $risky (local.get 0)))
      (return))
    (i32.add (i32.const 1000)))
  (func (export "unsafe") (param i32) (result i32) (call $risky (local.get 0))))"""


#: The host functions (wasm_sandbox.hostapi): a counter in the KV store, a quota filler,
#: a delete, a chatty logger and a wild pointer.
HOST_KV = """(module
  (import "wasm-sandbox:host@1" "kv_delete" (func $del (param i32 i32) (result i32)))
  (import "wasm-sandbox:host@1" "kv_get" (func $get (param i32 i32 i32 i32) (result i32)))
  (import "wasm-sandbox:host@1" "kv_set" (func $set (param i32 i32 i32 i32) (result i32)))
  (import "wasm-sandbox:host@1" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "count")
  (data (i32.const 16) "hello from the guest")
  ;; count = count + 1; returns the new count
  (func (export "bump") (result i32)
    (local $n i32)
    (if (i32.eq (call $get (i32.const 0) (i32.const 5) (i32.const 64) (i32.const 4)) (i32.const 4))
      (then (local.set $n (i32.load (i32.const 64)))))
    (i32.store (i32.const 64) (i32.add (local.get $n) (i32.const 1)))
    (drop (call $set (i32.const 0) (i32.const 5) (i32.const 64) (i32.const 4)))
    (call $log (i32.const 1) (i32.const 16) (i32.const 20))
    (i32.load (i32.const 64)))
  ;; writes 1 KiB values under keys 0..n until refused; returns the last code
  (func (export "fill") (result i32)
    (local $i i32) (local $r i32)
    (loop $l
      (i32.store (i32.const 128) (local.get $i))
      (local.set $r (call $set (i32.const 128) (i32.const 4) (i32.const 1024) (i32.const 1024)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.eqz (local.get $r))))
    (local.get $r))
  ;; deletes "count": 1 deleted, 0 absent, -3 read-only
  (func (export "forget") (result i32) (call $del (i32.const 0) (i32.const 5)))
  ;; n host calls: each costs fuel
  (func (export "chatter") (param $n i32) (result i32)
    (loop $l
      (call $log (i32.const 0) (i32.const 16) (i32.const 5))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $l (i32.gt_s (local.get $n) (i32.const 0))))
    (i32.const 0))
  ;; a key pointer far outside memory: -2
  (func (export "wild") (result i32)
    (call $get (i32.const -16) (i32.const 64) (i32.const 0) (i32.const 4))))
"""

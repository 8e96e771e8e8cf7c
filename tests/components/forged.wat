(module
  (import "wasm-sandbox:host/kv@1.0.0" "get" (func $get (param i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "peek") (result i32) (call $get (i32.const 7)))
)

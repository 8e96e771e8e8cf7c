;; fact.wat: the factorial of n, recursively. Try: wasm-sandbox run fact.wat --invoke fact 20
(module
  (func $fact (export "fact") (param $n i64) (result i64)
    (if (result i64) (i64.eqz (local.get $n))
      (then (i64.const 1))
      (else (i64.mul (local.get $n)
                     (call $fact (i64.sub (local.get $n) (i64.const 1))))))))

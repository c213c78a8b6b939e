;; Hostile: writes output after its run ended. The component model's post-return
;; function is the only guest code that runs after an export returned; this module's
;; post-return calls output.metric. Expected: CallAfterRunEnded (wasmtime forbids
;; imports during post-return, and the host refuses calls once the run ended).
;; Written by hand in the component text format because wit-bindgen generates the
;; post-return function itself.
(component
  (import "cleanroom:workload/output@0.1.0" (instance $output
    (export "metric" (func (param "name" string) (param "value" f64)))
  ))
  (core module $Mem
    (memory (export "memory") 1)
  )
  (core instance $mem (instantiate $Mem))
  (alias core export $mem "memory" (core memory $memory))
  (alias export $output "metric" (func $metric_f))
  (core func $metric (canon lower (func $metric_f) (memory $memory)))
  (core module $Main
    (import "env" "memory" (memory 1))
    (import "env" "metric" (func $metric (param i32 i32 f64)))
    (data (i32.const 8) "leaked")
    (global $heap (mut i32) (i32.const 1024))
    ;; run(params) -> result<_, string>: returns a pointer to the result (tag 0 = ok).
    (func (export "run") (param i32 i32) (result i32)
      (i32.store8 (i32.const 64) (i32.const 0))
      (i32.const 64))
    ;; post-return: runs after the host received the result.
    (func (export "post-run") (param i32)
      (call $metric (i32.const 8) (i32.const 6) (f64.const 42)))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (local $p i32)
      (local.set $p (global.get $heap))
      (global.set $heap (i32.add (global.get $heap) (local.get 3)))
      (local.get $p))
  )
  (core instance $env
    (export "memory" (memory $memory))
    (export "metric" (func $metric)))
  (core instance $main (instantiate $Main (with "env" (instance $env))))
  (alias core export $main "run" (core func $run_core))
  (alias core export $main "realloc" (core func $realloc))
  (alias core export $main "post-run" (core func $post))
  (func $run (param "params" string) (result (result (error string)))
    (canon lift (core func $run_core) (memory $memory) (realloc $realloc) (post-return $post)))
  (export "run" (func $run))
)

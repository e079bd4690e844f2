;; WASI path_open with rights outside the flag set (all 64 bits set)
(module
(import "wasi_snapshot_preview1" "path_open"
  (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (memory (export "memory") 2)

  (global $heap (mut i32) (i32.const 4096))
  (func (export "rwq_abi_version") (result i32) (i32.const 1))
  (func $alloc (export "rwq_alloc") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))


(data (i32.const 16) "[{\"type\":\"text\",\"text\":\"blocked\"}]")
(data (i32.const 64) "[{\"type\":\"text\",\"text\":\"leaked\"}]")

(data (i32.const 112) "etc/passwd")
(func (export "rwq_render") (param i32 i32) (result i64)
  (if (result i64)
    (i32.ne (call $path_open (i32.const 3) (i32.const 0) (i32.const 112) (i32.const 10)
              (i32.const 0) (i64.const -1) (i64.const -1) (i32.const 0) (i32.const 256))
            (i32.const 0))
    (then (call $pack (i32.const 16) (i32.const 34)))
    (else (call $pack (i32.const 64) (i32.const 33)))))
)

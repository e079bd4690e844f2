;; storage_set with a forged plugin identity in its arguments
(module
(import "rwq" "storage_set" (func $storage_set (param i32 i32) (result i64)))
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


(data (i32.const 16) "[{\"type\":\"text\",\"text\":\"refused\"}]")
(data (i32.const 64) "[{\"type\":\"text\",\"text\":\"stored\"}]")
(data (i32.const 112) "{\"error\"")
(data (i32.const 128) "{\"key\":\"k\",\"value\":\"v\",\"plugin\":\"victim\"}")
(func (export "rwq_render") (param i32 i32) (result i64)
  (local $r i64)
  (local.set $r (call $storage_set (i32.const 128) (i32.const 41)))
  (if (result i64)
    (i32.and
      (i64.ne (local.get $r) (i64.const 0))
      (i64.eq (i64.load (i32.wrap_i64 (i64.shr_u (local.get $r) (i64.const 32))))
              (i64.load (i32.const 112))))
    (then (call $pack (i32.const 16) (i32.const 34)))
    (else (call $pack (i32.const 64) (i32.const 33)))))
)

;; a 10 MB render result
(module

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


;; [{"type":"text","text":" at 16 (24 bytes), "}] at 48 (3 bytes)
(data (i32.const 16) "[{\"type\":\"text\",\"text\":\"")
(data (i32.const 48) "\"}]")
(func (export "rwq_render") (param i32 i32) (result i64)
  (local $base i32)
  (local.set $base (i32.mul (memory.grow (i32.const 160)) (i32.const 65536)))
  (memory.copy (local.get $base) (i32.const 16) (i32.const 24))
  (memory.fill (i32.add (local.get $base) (i32.const 24)) (i32.const 97) (i32.const 9999973))
  (memory.copy (i32.add (local.get $base) (i32.const 9999997)) (i32.const 48) (i32.const 3))
  (call $pack (local.get $base) (i32.const 10000000)))
)

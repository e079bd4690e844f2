;; an endless loop in _initialize (load)
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


(func (export "_initialize") (loop $forever (br $forever)))

(data (i32.const 16) "[{\"type\":\"text\",\"text\":\"hi\"}]")
(func (export "rwq_render") (param i32 i32) (result i64)
  (call $pack (i32.const 16) (i32.const 29)))
)

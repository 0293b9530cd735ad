;; Golden bad module: an ABI 2.1 guest that offers FORK, and whose kvpolicy_fork_save
;; never returns. Its other calls are ok.wat's.
(module
  (memory (export "memory") 1)
  (func (export "kvpolicy_abi_version") (result i32) (i32.const 0x20001))
  (func (export "kvpolicy_buffer") (param $size i32) (result i32)
    (local $pages i32)
    (local.set $pages (i32.add (i32.shr_u (i32.add (local.get $size) (i32.const 65535)) (i32.const 16)) (i32.const 1)))
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then (drop (memory.grow (i32.sub (local.get $pages) (memory.size))))))
    (i32.const 65536))
  (func (export "kvpolicy_new") (result i32)
    (i32.store offset=168 (i32.const 65536) (i32.const 1)) ;; caps: FORK
    (i32.const 0))
  (func (export "kvpolicy_init") (result i32) (i32.const 0))
  (func (export "kvpolicy_observe") (result i32) (i32.const 0))
  (func (export "kvpolicy_fork_save") (result i32) (loop $forever (br $forever)) (i32.const 0))
  (func (export "kvpolicy_fork_load") (result i32) (i32.const 0))
  (func (export "kvpolicy_evict") (result i32) (i32.const 0))
)

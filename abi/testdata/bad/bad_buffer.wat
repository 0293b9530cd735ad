;; Golden bad module: returns a region that runs past the end of its memory.
;; Otherwise it is ok.wat.
(module
  (memory (export "memory") 1)
  (func (export "kvpolicy_abi_version") (result i32) (i32.const 0x10000))
  (func (export "kvpolicy_buffer") (param $size i32) (result i32) (i32.const 65528))
  (func (export "kvpolicy_new") (result i32) (i32.const 0))
  (func (export "kvpolicy_init") (result i32)
    (i32.store offset=60 (i32.const 65536) (i32.const 1)) ;; flags: unbounded
    (i32.const 0))
  (func (export "kvpolicy_observe") (result i32) (i32.const 0))
  (func (export "kvpolicy_evict") (result i32) (i32.const 0))
)

;; Golden bad module: its _initialize never returns, so it never finishes loading.
;; Otherwise it is ok.wat.
(module
  (memory (export "memory") 1)
  (func (export "_initialize") (loop $l (br $l)))
  (func (export "kvpolicy_abi_version") (result i32) (i32.const 0x10000))
  (func (export "kvpolicy_buffer") (param $size i32) (result i32) (i32.const 65536))
  (func (export "kvpolicy_new") (result i32) (i32.const 0))
  (func (export "kvpolicy_init") (result i32) (i32.const 0))
  (func (export "kvpolicy_observe") (result i32) (i32.const 0))
  (func (export "kvpolicy_evict") (result i32) (i32.const 0))
)

;; Golden bad module: exports a name from the host's reserved prefix.
;; Otherwise it is ok.wat.
(module
  (memory (export "memory") 1)
  (global (export "__kvsim_stop") (mut i32) (i32.const 0))
  (func (export "kvpolicy_abi_version") (result i32) (i32.const 0x10000))
  (func (export "kvpolicy_buffer") (param $size i32) (result i32) (i32.const 65536))
  (func (export "kvpolicy_new") (result i32) (i32.const 0))
  (func (export "kvpolicy_init") (result i32) (i32.const 0))
  (func (export "kvpolicy_observe") (result i32) (i32.const 0))
  (func (export "kvpolicy_evict") (result i32) (i32.const 0))
)

;; StreamingLLM's window policy, hand-written in WebAssembly text against kvsim's
;; policy ABI v1 (abi/ABI.md). It is kvsim's builtin window with its default params:
;; keep the first 4 tokens (attention sinks) and evict the oldest of the rest; a budget
;; too small for 4 sinks and one recent token keeps budget-1 sinks. It takes no params.
;;
;; Build: wat2wasm window.wat -o window.wasm
;;
;; Memory: page 0 holds the messages below; the region and the state come from
;; memory.grow, only when the host asks for a larger region and at init.
(module
  (memory (export "memory") 1)

  (data (i32.const 16) "window: this example takes no params") ;; 36 bytes
  (data (i32.const 64) "window: nothing left to evict")        ;; 29 bytes
  (data (i32.const 96) "window: budget must be at least 1")    ;; 33 bytes
  (data (i32.const 144) "window: out of memory")               ;; 21 bytes

  (global $region (mut i32) (i32.const 0))
  (global $region_cap (mut i32) (i32.const 0))
  ;; State: front[h] and back[h] index head h's queue of non-sink slots, oldest
  ;; first, at queue[h*max_len ...].
  (global $state (mut i32) (i32.const 0))
  (global $state_cap (mut i32) (i32.const 0))
  (global $heads (mut i32) (i32.const 0))
  (global $max_len (mut i32) (i32.const 0))

  ;; alloc returns size bytes of fresh pages, or 0 at the page limit.
  (func $alloc (param $size i32) (result i32)
    (local $old i32)
    (local.set $old (memory.grow (i32.shr_u (i32.add (local.get $size) (i32.const 65535)) (i32.const 16))))
    (if (i32.eq (local.get $old) (i32.const -1)) (then (return (i32.const 0))))
    (i32.shl (local.get $old) (i32.const 16)))

  ;; fail points the header's error fields at a message and returns KVP_ERROR.
  (func $fail (param $msg i32) (param $len i32) (result i32)
    (i32.store offset=112 (global.get $region) (local.get $msg))
    (i32.store offset=116 (global.get $region) (local.get $len))
    (i32.const 1))

  (func (export "kvpolicy_abi_version") (result i32)
    (i32.const 0x10000)) ;; 1.0

  (func (export "kvpolicy_buffer") (param $size i32) (result i32)
    (local $r i32)
    (if (i32.le_s (local.get $size) (i32.const 0)) (then (return (i32.const 0))))
    (if (i32.gt_u (local.get $size) (global.get $region_cap))
      (then
        (local.set $r (call $alloc (local.get $size)))
        (if (i32.eqz (local.get $r)) (then (return (i32.const 0))))
        (global.set $region (local.get $r))
        (global.set $region_cap (local.get $size))))
    (global.get $region))

  ;; skip returns the index of the first non-space byte of params at or after i.
  (func $skip (param $p i32) (param $n i32) (param $i i32) (result i32)
    (local $c i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $c (i32.load8_u (i32.add (local.get $p) (local.get $i))))
        (br_if $done (i32.eqz (i32.or
          (i32.or (i32.eq (local.get $c) (i32.const 32)) (i32.eq (local.get $c) (i32.const 9)))
          (i32.or (i32.eq (local.get $c) (i32.const 10)) (i32.eq (local.get $c) (i32.const 13))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $i))

  ;; kvpolicy_new accepts only an empty object: {} with any spaces.
  (func (export "kvpolicy_new") (result i32)
    (local $p i32) (local $n i32) (local $i i32)
    (local.set $p (i32.add (global.get $region) (i32.load offset=8 (global.get $region))))
    (local.set $n (i32.load offset=12 (global.get $region)))
    (local.set $i (call $skip (local.get $p) (local.get $n) (i32.const 0)))
    (block $bad
      (br_if $bad (i32.ge_u (local.get $i) (local.get $n)))
      (br_if $bad (i32.ne (i32.load8_u (i32.add (local.get $p) (local.get $i))) (i32.const 123))) ;; {
      (local.set $i (call $skip (local.get $p) (local.get $n) (i32.add (local.get $i) (i32.const 1))))
      (br_if $bad (i32.ge_u (local.get $i) (local.get $n)))
      (br_if $bad (i32.ne (i32.load8_u (i32.add (local.get $p) (local.get $i))) (i32.const 125))) ;; }
      (local.set $i (call $skip (local.get $p) (local.get $n) (i32.add (local.get $i) (i32.const 1))))
      (br_if $bad (i32.ne (local.get $i) (local.get $n)))
      (return (i32.const 0)))
    (call $fail (i32.const 16) (i32.const 36)))

  (func $front (param $h i32) (result i32) (i32.add (global.get $state) (i32.shl (local.get $h) (i32.const 2))))
  (func $back (param $h i32) (result i32)
    (i32.add (global.get $state) (i32.shl (i32.add (global.get $heads) (local.get $h)) (i32.const 2))))
  ;; $slot_at is the address of entry i of head h's queue.
  (func $slot_at (param $h i32) (param $i i32) (result i32)
    (i32.add
      (i32.add (global.get $state) (i32.shl (global.get $heads) (i32.const 3)))
      (i32.shl (i32.add (i32.mul (local.get $h) (global.get $max_len)) (local.get $i)) (i32.const 2))))

  (func (export "kvpolicy_init") (result i32)
    (local $prompt i32) (local $budget i32) (local $sink i32) (local $need i32)
    (local $h i32) (local $s i32) (local $b i32) (local $mem i32)
    (global.set $heads (i32.load offset=24 (global.get $region)))
    (local.set $prompt (i32.load offset=32 (global.get $region)))
    (global.set $max_len (i32.load offset=36 (global.get $region)))
    (local.set $budget (i32.load offset=40 (global.get $region)))
    (if (i32.lt_s (local.get $budget) (i32.const 1))
      (then (return (call $fail (i32.const 96) (i32.const 33)))))
    ;; sink = min(4, budget-1, prompt)
    (local.set $sink (i32.const 4))
    (if (i32.lt_s (i32.sub (local.get $budget) (i32.const 1)) (local.get $sink))
      (then (local.set $sink (i32.sub (local.get $budget) (i32.const 1)))))
    (if (i32.lt_s (local.get $prompt) (local.get $sink))
      (then (local.set $sink (local.get $prompt))))
    ;; state: front and back (8 bytes a head), then heads*max_len queue entries
    (local.set $need (i32.shl
      (i32.add (i32.shl (global.get $heads) (i32.const 1)) (i32.mul (global.get $heads) (global.get $max_len)))
      (i32.const 2)))
    (if (i32.gt_u (local.get $need) (global.get $state_cap))
      (then
        (local.set $mem (call $alloc (local.get $need)))
        (if (i32.eqz (local.get $mem)) (then (return (call $fail (i32.const 144) (i32.const 21)))))
        (global.set $state (local.get $mem))
        (global.set $state_cap (local.get $need))))
    (local.set $h (i32.const 0))
    (block $heads_done
      (loop $each_head
        (br_if $heads_done (i32.ge_s (local.get $h) (global.get $heads)))
        (local.set $b (i32.const 0))
        (local.set $s (local.get $sink))
        (block $prompt_done
          (loop $each_slot
            (br_if $prompt_done (i32.ge_s (local.get $s) (local.get $prompt)))
            (i32.store (call $slot_at (local.get $h) (local.get $b)) (local.get $s))
            (local.set $b (i32.add (local.get $b) (i32.const 1)))
            (local.set $s (i32.add (local.get $s) (i32.const 1)))
            (br $each_slot)))
        (i32.store (call $front (local.get $h)) (i32.const 0))
        (i32.store (call $back (local.get $h)) (local.get $b))
        (local.set $h (i32.add (local.get $h) (i32.const 1)))
        (br $each_head)))
    (i32.store offset=56 (global.get $region) (i32.const 0)) ;; slack
    (i32.store offset=60 (global.get $region) (i32.const 0)) ;; flags
    (i32.const 0))

  ;; kvpolicy_observe queues each decode token's slot.
  (func (export "kvpolicy_observe") (result i32)
    (local $slots i32) (local $h i32) (local $b i32)
    (if (i32.ne (i32.load offset=64 (global.get $region)) (i32.const 2)) (then (return (i32.const 0))))
    (local.set $slots (i32.add (global.get $region) (i32.load offset=84 (global.get $region))))
    (block $done
      (loop $each_head
        (br_if $done (i32.ge_s (local.get $h) (global.get $heads)))
        (local.set $b (i32.load (call $back (local.get $h))))
        (i32.store (call $slot_at (local.get $h) (local.get $b))
          (i32.load (i32.add (local.get $slots) (i32.shl (local.get $h) (i32.const 2)))))
        (i32.store (call $back (local.get $h)) (i32.add (local.get $b) (i32.const 1)))
        (local.set $h (i32.add (local.get $h) (i32.const 1)))
        (br $each_head)))
    (i32.const 0))

  ;; kvpolicy_evict takes the oldest non-sink tokens of each head.
  (func (export "kvpolicy_evict") (result i32)
    (local $need i32) (local $count i32) (local $victims i32) (local $stride i32)
    (local $h i32) (local $n i32) (local $f i32) (local $want i32)
    (local.set $need (i32.add (global.get $region) (i32.load offset=92 (global.get $region))))
    (local.set $count (i32.add (global.get $region) (i32.load offset=96 (global.get $region))))
    (local.set $victims (i32.add (global.get $region) (i32.load offset=100 (global.get $region))))
    (local.set $stride (i32.load offset=76 (global.get $region)))
    (block $done
      (loop $each_head
        (br_if $done (i32.ge_s (local.get $h) (global.get $heads)))
        (local.set $want (i32.load (i32.add (local.get $need) (i32.shl (local.get $h) (i32.const 2)))))
        (local.set $f (i32.load (call $front (local.get $h))))
        (local.set $n (i32.const 0))
        (block $head_done
          (loop $each_victim
            (br_if $head_done (i32.ge_s (local.get $n) (local.get $want)))
            (if (i32.ge_s (local.get $f) (i32.load (call $back (local.get $h))))
              (then (return (call $fail (i32.const 64) (i32.const 29)))))
            (i32.store
              (i32.add (local.get $victims)
                (i32.shl (i32.add (i32.mul (local.get $h) (local.get $stride)) (local.get $n)) (i32.const 2)))
              (i32.load (call $slot_at (local.get $h) (local.get $f))))
            (local.set $f (i32.add (local.get $f) (i32.const 1)))
            (local.set $n (i32.add (local.get $n) (i32.const 1)))
            (br $each_victim)))
        (i32.store (call $front (local.get $h)) (local.get $f))
        (i32.store (i32.add (local.get $count) (i32.shl (local.get $h) (i32.const 2))) (local.get $n))
        (local.set $h (i32.add (local.get $h) (i32.const 1)))
        (br $each_head)))
    (i32.const 0))
)

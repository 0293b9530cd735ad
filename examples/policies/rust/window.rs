//! StreamingLLM's window policy in Rust, against kvsim's policy ABI v1 (abi/ABI.md).
//! It is kvsim's builtin window: keep the first `sink` tokens (attention sinks,
//! default 4) and evict the oldest of the rest; a budget too small for the sinks and
//! one recent token keeps budget-1 sinks. Params: `{"sink": N}`, N ≥ 0.
//!
//! Build (Debian: apt-get install rustc libstd-rust-dev-wasm32):
//!
//!     rustc --edition 2021 --crate-type cdylib --target wasm32-unknown-unknown -O -C panic=abort -o window.wasm window.rs
//!
//! No std and no allocator: the region and the state come from memory.grow, only
//! when the host asks for a larger region and at init.
#![no_std]

use core::arch::wasm32;
use core::ptr;

// A panic becomes a trap, which kvsim reports with the policy's row.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    wasm32::unreachable()
}

// Header offsets (ABI.md §4.2).
const PARAMS_OFF: usize = 8;
const PARAMS_LEN: usize = 12;
const HEADS: usize = 24;
const PROMPT_LEN: usize = 32;
const MAX_LEN: usize = 36;
const BUDGET: usize = 40;
const SLACK: usize = 56;
const FLAGS: usize = 60;
const PHASE: usize = 64;
const STRIDE: usize = 76;
const SLOT_OFF: usize = 84;
const NEED_OFF: usize = 92;
const COUNT_OFF: usize = 96;
const VICTIMS_OFF: usize = 100;
const ERR_PTR: usize = 112;
const ERR_LEN: usize = 116;

const OK: i32 = 0;
const ERROR: i32 = 1;
const DECODE: i32 = 2;

// One policy instance per module instance, so its state lives in statics, touched
// by one thread at a time.
static mut REGION: usize = 0;
static mut REGION_CAP: usize = 0;
static mut SINK: i32 = 4;
static mut HEADS_N: usize = 0;
static mut MAX_LEN_N: usize = 0;
// queue[h*max_len ..] holds head h's non-sink slots, oldest first, from front[h] to
// back[h]; all three live in pages of their own.
static mut QUEUE: usize = 0;
static mut FRONT: usize = 0;
static mut BACK: usize = 0;
static mut STATE_CAP: u64 = 0;
// Error messages outlive the call that fails.
static mut MESSAGE: [u8; 128] = [0; 128];

unsafe fn load(addr: usize) -> i32 {
    ptr::read(addr as *const i32)
}

unsafe fn store(addr: usize, v: i32) {
    ptr::write(addr as *mut i32, v)
}

/// The header field at off.
unsafe fn field(off: usize) -> i32 {
    load(REGION + off)
}

/// The array whose offset the header field at off holds.
unsafe fn array(off: usize) -> usize {
    REGION + field(off) as u32 as usize
}

/// Fresh pages for size bytes, or 0 at the host's page limit.
fn alloc(size: u64) -> usize {
    let old = wasm32::memory_grow(0, ((size + 65535) >> 16) as usize);
    if old == usize::MAX {
        0
    } else {
        old << 16
    }
}

/// Writes the message parts, one after the other, for the host and returns ERROR.
unsafe fn fail(parts: &[&[u8]]) -> i32 {
    let mut n = 0;
    for part in parts {
        for &b in part.iter() {
            if n < MESSAGE.len() {
                MESSAGE[n] = b;
                n += 1;
            }
        }
    }
    store(REGION + ERR_PTR, MESSAGE.as_ptr() as i32);
    store(REGION + ERR_LEN, n as i32);
    ERROR
}

#[no_mangle]
pub extern "C" fn kvpolicy_abi_version() -> i32 {
    0x10000 // 1.0
}

#[no_mangle]
pub unsafe extern "C" fn kvpolicy_buffer(size: i32) -> i32 {
    if size <= 0 {
        return 0;
    }
    if size as usize > REGION_CAP {
        let r = alloc(size as u64);
        if r == 0 {
            return 0;
        }
        REGION = r;
        REGION_CAP = size as usize;
    }
    REGION as i32
}

fn skip_space(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// Parses the params, a JSON object whose only key may be "sink".
#[no_mangle]
pub unsafe extern "C" fn kvpolicy_new() -> i32 {
    let s = core::slice::from_raw_parts(array(PARAMS_OFF) as *const u8, field(PARAMS_LEN) as usize);
    let mut i = skip_space(s, 0);
    if i >= s.len() || s[i] != b'{' {
        return fail(&[b"window: params: want a JSON object"]);
    }
    i = skip_space(s, i + 1);
    let mut sink: i64 = 4;
    while i < s.len() && s[i] != b'}' {
        if s[i] != b'"' {
            return fail(&[b"window: params: want a key"]);
        }
        let key = i + 1;
        i = key;
        while i < s.len() && s[i] != b'"' && s[i] != b'\\' {
            i += 1;
        }
        if i >= s.len() || s[i] != b'"' {
            return fail(&[b"window: params: keys with escapes are not supported"]);
        }
        let name = &s[key..i];
        i = skip_space(s, i + 1);
        if i >= s.len() || s[i] != b':' {
            return fail(&[b"window: params: want ':' after a key"]);
        }
        i = skip_space(s, i + 1);
        if name != b"sink" {
            return fail(&[b"window: param \"", name, b"\": unknown param"]);
        }
        // The host writes integers without a fraction (ABI.md §3).
        let digits = i;
        sink = 0;
        while i < s.len() && s[i].is_ascii_digit() && sink <= i32::MAX as i64 {
            sink = sink * 10 + (s[i] - b'0') as i64;
            i += 1;
        }
        if i == digits || sink > i32::MAX as i64 || (i < s.len() && matches!(s[i], b'.' | b'e' | b'E')) {
            return fail(&[b"window: param \"sink\": want an integer >= 0"]);
        }
        i = skip_space(s, i);
        if i < s.len() && s[i] == b',' {
            i = skip_space(s, i + 1);
        }
    }
    if i >= s.len() {
        return fail(&[b"window: params: unterminated object"]);
    }
    SINK = sink as i32;
    OK
}

#[no_mangle]
pub unsafe extern "C" fn kvpolicy_init() -> i32 {
    let (heads, prompt_len, max_len, budget) = (field(HEADS), field(PROMPT_LEN), field(MAX_LEN), field(BUDGET));
    if heads < 1 || prompt_len < 0 || max_len < prompt_len {
        return fail(&[b"window: bad config"]);
    }
    if budget < 1 {
        return fail(&[b"window: budget must be at least 1"]);
    }
    let sink = SINK.min(budget - 1).min(prompt_len);
    let (h_n, t_n) = (heads as u64, max_len as u64);
    let need = h_n * t_n * 4 + h_n * 8;
    if need > i32::MAX as u64 {
        return fail(&[b"window: out of memory"]);
    }
    if need > STATE_CAP {
        let mem = alloc(need);
        if mem == 0 {
            return fail(&[b"window: out of memory"]);
        }
        STATE_CAP = (need + 65535) & !65535;
        QUEUE = mem;
        FRONT = mem + (h_n * t_n * 4) as usize;
        BACK = FRONT + heads as usize * 4;
    }
    HEADS_N = heads as usize;
    MAX_LEN_N = max_len as usize;
    for h in 0..HEADS_N {
        let q = QUEUE + h * MAX_LEN_N * 4;
        let mut b = 0;
        for s in sink..prompt_len {
            store(q + b * 4, s);
            b += 1;
        }
        store(FRONT + h * 4, 0);
        store(BACK + h * 4, b as i32);
    }
    store(REGION + SLACK, 0);
    store(REGION + FLAGS, 0);
    OK
}

#[no_mangle]
pub unsafe extern "C" fn kvpolicy_observe() -> i32 {
    if field(PHASE) != DECODE {
        return OK;
    }
    let slot = array(SLOT_OFF);
    for h in 0..HEADS_N {
        let b = load(BACK + h * 4) as usize;
        if b >= MAX_LEN_N {
            return fail(&[b"window: more tokens than max_len"]);
        }
        store(QUEUE + (h * MAX_LEN_N + b) * 4, load(slot + h * 4));
        store(BACK + h * 4, b as i32 + 1);
    }
    OK
}

#[no_mangle]
pub unsafe extern "C" fn kvpolicy_evict() -> i32 {
    let (need, count, victims) = (array(NEED_OFF), array(COUNT_OFF), array(VICTIMS_OFF));
    let stride = field(STRIDE) as usize;
    for h in 0..HEADS_N {
        let n = load(need + h * 4).max(0) as usize;
        if n > stride {
            return fail(&[b"window: more victims needed than the stride holds"]);
        }
        let (mut f, b) = (load(FRONT + h * 4) as usize, load(BACK + h * 4) as usize);
        for i in 0..n {
            if f == b {
                return fail(&[b"window: nothing left to evict"]);
            }
            store(victims + (h * stride + i) * 4, load(QUEUE + (h * MAX_LEN_N + f) * 4));
            f += 1;
        }
        store(FRONT + h * 4, f as i32);
        store(count + h * 4, n as i32);
    }
    OK
}

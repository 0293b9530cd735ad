// StreamingLLM's window policy in AssemblyScript, against kvsim's policy ABI v1
// (abi/ABI.md). It is kvsim's builtin window with its default params: keep the first
// 4 tokens (attention sinks) and evict the oldest of the rest; a budget too small for
// 4 sinks and one recent token keeps budget-1 sinks. It takes no params.
//
// Build (npm ci first): npx asc window.ts -o window.wasm -O3 --runtime stub --use abort=
//
// --use abort= drops the compiler's env.abort import, which kvsim does not provide: a
// failed bounds check then traps, and kvsim reports the trap. Nothing here allocates
// through the runtime: the region and the state come from memory.grow.

// Header offsets (ABI.md §4.2).
const PARAMS_LEN = 12;
const HEADS = 24;
const PROMPT_LEN = 32;
const MAX_LEN = 36;
const BUDGET = 40;
const SLACK = 56;
const FLAGS = 60;
const PHASE = 64;
const STRIDE = 76;
const SLOT_OFF = 84;
const NEED_OFF = 92;
const COUNT_OFF = 96;
const VICTIMS_OFF = 100;
const ERR_PTR = 112;
const ERR_LEN = 116;

const OK = 0;
const ERROR = 1;
const DECODE = 2;
const SINK = 4;

let region: usize = 0;
let regionCap: i32 = 0;
// State, in pages of its own: queue[h*maxLen ...] holds head h's non-sink slots,
// oldest first, from front[h] to back[h].
let queue: usize = 0;
let front: usize = 0;
let back: usize = 0;
let stateCap: u64 = 0;
let heads: i32 = 0;
let maxLen: i32 = 0;

// An error message, in UTF-8, outlives the call that fails.
const message = memory.data(64);

// alloc returns size bytes of fresh pages, or 0 at the host's page limit.
function alloc(size: u64): usize {
  const old = memory.grow(<i32>((size + 65535) >> 16));
  return old < 0 ? 0 : (<usize>old) << 16;
}

// fail points the header's error fields at msg (ASCII) and returns ERROR.
function fail(msg: string): i32 {
  const n = min(msg.length, 64);
  for (let i = 0; i < n; i++) store<u8>(message + i, <u8>msg.charCodeAt(i));
  store<u32>(region + ERR_PTR, <u32>message);
  store<u32>(region + ERR_LEN, <u32>n);
  return ERROR;
}

export function kvpolicy_abi_version(): i32 {
  return 0x10000; // 1.0
}

export function kvpolicy_buffer(size: i32): usize {
  if (size <= 0) return 0;
  if (size > regionCap) {
    const r = alloc(<u64>size);
    if (r == 0) return 0;
    region = r;
    regionCap = size;
  }
  return region;
}

export function kvpolicy_new(): i32 {
  // The params are a JSON object; this example takes none, so it wants "{}".
  const p = region + <usize>load<u32>(region + 8);
  const n = load<u32>(region + PARAMS_LEN);
  let inside = false;
  for (let i: u32 = 0; i < n; i++) {
    const c = load<u8>(p + i);
    if (c == 0x7b) inside = true; // {
    else if (c == 0x7d) break; // }
    else if (inside && c != 0x20 && c != 0x09 && c != 0x0a && c != 0x0d) return fail("window: this example takes no params");
  }
  return OK;
}

export function kvpolicy_init(): i32 {
  heads = load<i32>(region + HEADS);
  maxLen = load<i32>(region + MAX_LEN);
  const promptLen = load<i32>(region + PROMPT_LEN);
  const budget = load<i32>(region + BUDGET);
  if (heads < 1 || promptLen < 0 || maxLen < promptLen) return fail("window: bad config");
  if (budget < 1) return fail("window: budget must be at least 1");
  const sink = min(min(SINK, budget - 1), promptLen);
  const need = <u64>heads * <u64>maxLen * 4 + <u64>heads * 8;
  if (need > 0x7fffffff) return fail("window: out of memory");
  if (need > stateCap) {
    const mem = alloc(need);
    if (mem == 0) return fail("window: out of memory");
    stateCap = (need + 65535) & ~65535;
    queue = mem;
    front = mem + <usize>heads * <usize>maxLen * 4;
    back = front + <usize>heads * 4;
  }
  for (let h = 0; h < heads; h++) {
    const q = queue + <usize>h * <usize>maxLen * 4;
    let b = 0;
    for (let s = sink; s < promptLen; s++) store<i32>(q + <usize>(b++) * 4, s);
    store<i32>(front + <usize>h * 4, 0);
    store<i32>(back + <usize>h * 4, b);
  }
  store<i32>(region + SLACK, 0);
  store<u32>(region + FLAGS, 0);
  return OK;
}

export function kvpolicy_observe(): i32 {
  if (load<i32>(region + PHASE) != DECODE) return OK;
  const slot = region + <usize>load<u32>(region + SLOT_OFF);
  for (let h = 0; h < heads; h++) {
    const b = load<i32>(back + <usize>h * 4);
    if (b >= maxLen) return fail("window: more tokens than max_len");
    store<i32>(queue + (<usize>h * <usize>maxLen + <usize>b) * 4, load<i32>(slot + <usize>h * 4));
    store<i32>(back + <usize>h * 4, b + 1);
  }
  return OK;
}

export function kvpolicy_evict(): i32 {
  const need = region + <usize>load<u32>(region + NEED_OFF);
  const count = region + <usize>load<u32>(region + COUNT_OFF);
  const victims = region + <usize>load<u32>(region + VICTIMS_OFF);
  const stride = load<i32>(region + STRIDE);
  for (let h = 0; h < heads; h++) {
    const n = load<i32>(need + <usize>h * 4);
    let f = load<i32>(front + <usize>h * 4);
    const b = load<i32>(back + <usize>h * 4);
    if (n > stride) return fail("window: more victims needed than the stride holds");
    for (let i = 0; i < n; i++) {
      if (f == b) return fail("window: nothing left to evict");
      const s = load<i32>(queue + (<usize>h * <usize>maxLen + <usize>f) * 4);
      store<i32>(victims + (<usize>h * <usize>stride + <usize>i) * 4, s);
      f++;
    }
    store<i32>(front + <usize>h * 4, f);
    store<i32>(count + <usize>h * 4, max(n, 0));
  }
  return OK;
}

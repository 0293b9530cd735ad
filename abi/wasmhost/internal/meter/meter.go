// Package meter rewrites a WebAssembly module so that its host can bound the work of
// every call deterministically and get control back, in Go, within bounded work.
//
// The rewrite adds a mutable i64 global, the fuel counter, exported as FuelExport, and
// an imported host function, ImportModule.ImportName of type (i64) -> i64, the tick.
// At every function entry and every loop head the guest subtracts one unit from the
// counter; before a bulk memory or table operation of n bytes or elements it
// subtracts n >> BulkShift. When the counter goes negative the guest calls the tick
// with it, and continues with the value the tick returns. The host sets the counter
// before each call and learns from the tick how much was used, so it can charge the
// work to a budget and stop the call when the budget is spent, the same way on every
// machine. Since the tick is Go code, the guest's goroutine reaches a Go safe point
// there: the scheduler and the garbage collector's stop-the-world can proceed, which
// they cannot while wazero's compiled code runs.
//
// Every path is covered: a loop iterates through its head, recursion and call trees
// go through function entries, and the module's start function and _initialize are
// functions like any other. Straight-line code between two checks is bounded by the
// size of the function.
//
// Adding an import shifts the index of every function the module defines by one;
// the rewrite renumbers calls, ref.func, exports, the start function, element
// segments, global initialisers and the name section. It decodes every instruction:
// the core spec with the sign-extension, saturating-conversion, bulk-memory,
// reference-types, multi-value, SIMD, threads, tail-call and exception-handling
// opcodes. On anything else, and on a module that already uses the names reserved
// for the host (exports starting with ReservedPrefix, imports from ImportModule), it
// returns an error. It drops DWARF sections, whose code offsets it would shift.
//
// On its way it checks every count the module declares against the bytes that
// follow and against browsers' implementation limits (sectionLimits, 50,000 locals
// a function, 1000 params or results a type): wazero allocates for a count before
// it reads the entries, so a few bytes could otherwise ask it for gigabytes.
package meter

import (
	"errors"
	"fmt"
	"strings"
)

// Names the rewrite adds. Everything starting with ReservedPrefix belongs to the host.
const (
	ReservedPrefix = "__kvsim"
	ImportModule   = "__kvsim"
	ImportName     = "tick"
	FuelExport     = "__kvsim_fuel"
)

// ErrReserved marks a module that uses names reserved for the host.
var ErrReserved = errors.New("names starting with " + ReservedPrefix + " are reserved for the host")

// BulkShift sets the price of bulk operations: n bytes or elements cost n >> BulkShift
// units, on top of nothing else.
const BulkShift = 8

const (
	secCustom = 0
	secType   = 1
	secImport = 2
	secFunc   = 3
	secTable  = 4
	secGlobal = 6
	secExport = 7
	secStart  = 8
	secElem   = 9
	secCode   = 10
	secData   = 11
	secCount  = 12
)

// maxLocals caps the locals of one function, as browsers do: a count costs a few
// bytes to declare, and wazero allocates for every local.
const maxLocals = 50000

// order is each section's place in a module; custom sections may go anywhere.
var order = map[byte]int{1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 13: 6, 6: 7, 7: 8, 8: 9, 9: 10, 12: 11, 10: 12, 11: 13}

// rewriter holds what the rewrite needs to know about the module.
type rewriter struct {
	types           uint32 // function types defined
	importedFuncs   uint32
	importedGlobals uint32
	definedGlobals  uint32
	fuel, scratch   uint32 // the new globals' indices
	tick            uint32 // the new import's function index
	definedFuncs    uint32
	named           bool // the module has a name section
}

// Instrument returns bin metered as the package doc says.
func Instrument(bin []byte) ([]byte, error) {
	if len(bin) < 8 || string(bin[:4]) != "\x00asm" || string(bin[4:8]) != "\x01\x00\x00\x00" {
		return nil, errors.New("not a WebAssembly 1.0 binary")
	}
	sections, err := split(bin[8:])
	if err != nil {
		return nil, err
	}
	var r rewriter
	for _, s := range sections {
		var err error
		switch s.id {
		case secCustom:
		case secStart, secCount: // one index or count, alone
			var next int
			if _, next, err = u32(s.body, 0); err == nil && next != len(s.body) {
				err = errors.New("not one number")
			}
		default:
			err = countFits(s.id, s.body)
		}
		if err != nil {
			return nil, fmt.Errorf("section %d: %w", s.id, err)
		}
		switch s.id {
		case secType:
			r.types, err = countFuncTypes(s.body)
		case secImport:
			r.importedFuncs, r.importedGlobals, err = scanImports(s.body)
		case secGlobal:
			r.definedGlobals, _, err = u32(s.body, 0)
		case secFunc:
			r.definedFuncs, _, err = u32(s.body, 0)
		case secTable:
			err = checkTables(s.body)
		case secData:
			err = checkData(s.body)
		}
		if err != nil {
			return nil, fmt.Errorf("section %d: %w", s.id, err)
		}
	}
	r.tick = r.importedFuncs
	r.fuel = r.importedGlobals + r.definedGlobals
	r.scratch = r.fuel + 1

	tickType := []byte{0x60, 1, 0x7e, 1, 0x7e} // (i64) -> i64
	tickImport := append(name(ImportModule), name(ImportName)...)
	tickImport = append(append(tickImport, 0x00), leb(r.types)...)
	newGlobals := []byte{0x7e, 0x01, 0x42, 0x00, 0x0b, 0x7f, 0x01, 0x41, 0x00, 0x0b} // mut i64 = 0; mut i32 = 0
	fuelExport := append(append(name(FuelExport), 0x03), leb(r.fuel)...)
	// Sections the rewrite needs, with what to add to them.
	additions := map[byte]struct {
		items []byte
		n     uint32
	}{
		secType:   {tickType, 1},
		secImport: {tickImport, 1},
		secGlobal: {newGlobals, 2},
		secExport: {fuelExport, 1},
	}
	wrote := map[byte]bool{}

	out := append([]byte(nil), bin[:8]...)
	emit := func(id byte, body []byte) {
		out = append(out, id)
		out = append(out, leb(uint32(len(body)))...)
		out = append(out, body...)
	}
	// missing emits the sections the module lacks and that go before place.
	missing := func(place int) {
		for _, id := range []byte{secType, secImport, secGlobal, secExport} {
			if !wrote[id] && order[id] < place {
				a := additions[id]
				emit(id, append(leb(a.n), a.items...))
				wrote[id] = true
			}
		}
	}
	for _, s := range sections {
		if s.id == secCustom {
			if body, keep := r.custom(s.body); keep {
				emit(s.id, body)
			}
			continue
		}
		missing(order[s.id])
		var body []byte
		var err error
		switch s.id {
		case secType, secImport:
			body, err = appendVec(s.body, additions[s.id].items, 1)
		case secGlobal:
			body, err = r.globals(s.body)
		case secExport:
			body, err = r.exports(s.body)
		case secStart:
			var f uint32
			if f, _, err = u32(s.body, 0); err == nil {
				body = leb(r.fn(f))
			}
		case secElem:
			body, err = r.elements(s.body)
		case secCode:
			body, err = r.code(s.body)
		default:
			body = s.body
		}
		if err != nil {
			return nil, fmt.Errorf("section %d: %w", s.id, err)
		}
		wrote[s.id] = true
		emit(s.id, body)
	}
	missing(len(order) + 1)
	if !r.named {
		emit(secCustom, r.names())
	}
	return out, nil
}

// names is a name section with only funcNames.
func (r *rewriter) names() []byte { return append(name("name"), r.funcNames()...) }

// funcNames is a function-names subsection that calls each defined function by its
// index before the rewrite, so that stack traces name the functions the module's
// author knows.
func (r *rewriter) funcNames() []byte {
	sub := leb(r.definedFuncs)
	for i := range r.definedFuncs {
		f := r.importedFuncs + i
		sub = append(append(sub, leb(r.fn(f))...), name(fmt.Sprintf("$%d", f))...)
	}
	return append(append([]byte{1}, leb(uint32(len(sub)))...), sub...)
}

// fn renumbers a function index: the new import goes after the imported functions.
func (r *rewriter) fn(i uint32) uint32 {
	if i >= r.importedFuncs {
		return i + 1
	}
	return i
}

// sectionLimits are the most entries a section may have: the limits that browsers'
// engines share (the JS API's implementation limits), far above what a policy needs.
var sectionLimits = map[byte]uint32{
	1: 1_000_000, 2: 100_000, 3: 1_000_000, 4: 100_000, 5: 1, 6: 1_000_000, 7: 100_000,
	9: 10_000_000, 10: 1_000_000, 11: 100_000, 13: 1_000_000,
}

// countFits refuses a vector that claims more entries than it has bytes (every entry
// takes one at least, and wazero allocates for the count before it reads them), or
// more than its section's limit.
func countFits(id byte, b []byte) error {
	n, at, err := u32(b, 0)
	switch {
	case err != nil:
		return err
	case uint64(n) > uint64(len(b)-at):
		return fmt.Errorf("a vector of %d entries in %d bytes", n, len(b)-at)
	case n > sectionLimits[id]:
		return fmt.Errorf("%d entries, more than the %d a module may have", n, sectionLimits[id])
	}
	return nil
}

// checkData walks the data segments, so that none claims more bytes than it has.
func checkData(b []byte) error {
	n, at, err := u32(b, 0)
	if err != nil {
		return err
	}
	for i := range n {
		var flags uint32
		if flags, at, err = u32(b, at); err != nil {
			return err
		}
		switch flags {
		case 0, 2: // active: [memory index,] offset expression
			if flags == 2 {
				if at, err = skipLEB(b, at); err != nil {
					return err
				}
			}
			var r rewriter
			if _, at, err = r.expr(nil, b, at); err != nil {
				return fmt.Errorf("data segment %d: %w", i, err)
			}
		case 1: // passive
		default:
			return fmt.Errorf("data segment %d: unknown kind %d", i, flags)
		}
		var size uint32
		if size, at, err = u32(b, at); err != nil {
			return err
		}
		if uint64(size) > uint64(len(b)-at) {
			return fmt.Errorf("data segment %d: %d bytes, past the section's end", i, size)
		}
		at += int(size)
	}
	return nil
}

func name(s string) []byte { return append(leb(uint32(len(s))), s...) }

func countFuncTypes(b []byte) (uint32, error) {
	n, at, err := u32(b, 0)
	if err != nil {
		return 0, err
	}
	for range n {
		if at >= len(b) || b[at] != 0x60 {
			return 0, errors.New("a type other than a function type")
		}
		at++
		for range 2 { // params, results
			var k uint32
			if k, at, err = u32(b, at); err != nil {
				return 0, err
			}
			if k > 1000 {
				return 0, fmt.Errorf("a function type with %d params or results, more than 1000", k)
			}
			for range k {
				if at, err = skipValType(b, at); err != nil {
					return 0, err
				}
			}
		}
	}
	return n, nil
}

// scanImports counts imported functions and globals, and refuses the host's module.
func scanImports(b []byte) (funcs, globals uint32, err error) {
	n, at, err := u32(b, 0)
	if err != nil {
		return 0, 0, err
	}
	for range n {
		var mod string
		if mod, at, err = readName(b, at); err != nil {
			return 0, 0, err
		}
		if mod == ImportModule {
			return 0, 0, fmt.Errorf("the module imports from %q: %w", ImportModule, ErrReserved)
		}
		if at, err = skipName(b, at); err != nil {
			return 0, 0, err
		}
		if at >= len(b) {
			return 0, 0, errShort
		}
		kind := b[at]
		at++
		switch kind {
		case 0x00, 0x04: // func: type index; tag: attribute, type index
			if kind == 0x00 {
				funcs++
			} else {
				at++
			}
			_, at, err = u32(b, at)
		case 0x01: // table: reftype, limits
			if at, err = skipValType(b, at); err == nil {
				at, err = skipLimits(b, at)
			}
		case 0x02: // memory: limits
			at, err = skipLimits(b, at)
		case 0x03: // global: valtype, mutability
			globals++
			if at, err = skipValType(b, at); err == nil {
				at++
			}
		default:
			return 0, 0, fmt.Errorf("unknown import kind %#x", kind)
		}
		if err != nil {
			return 0, 0, err
		}
	}
	return funcs, globals, nil
}

// checkTables refuses tables with initialiser expressions, which the rewrite does not
// renumber.
func checkTables(b []byte) error {
	n, at, err := u32(b, 0)
	if err != nil {
		return err
	}
	for range n {
		if at < len(b) && b[at] == 0x40 {
			return errors.New("a table with an initialiser expression")
		}
		if at, err = skipValType(b, at); err != nil {
			return err
		}
		if at, err = skipLimits(b, at); err != nil {
			return err
		}
	}
	return nil
}

func (r *rewriter) globals(b []byte) ([]byte, error) {
	n, at, err := u32(b, 0)
	if err != nil {
		return nil, err
	}
	out := leb(n + 2)
	for range n {
		start := at
		if at, err = skipValType(b, at); err != nil {
			return nil, err
		}
		at++ // mutability
		if at > len(b) {
			return nil, errShort
		}
		out = append(out, b[start:at]...)
		if out, at, err = r.expr(out, b, at); err != nil {
			return nil, err
		}
	}
	return append(out, 0x7e, 0x01, 0x42, 0x00, 0x0b, 0x7f, 0x01, 0x41, 0x00, 0x0b), nil
}

// exports renumbers function exports, refuses reserved names, and adds the fuel.
func (r *rewriter) exports(b []byte) ([]byte, error) {
	n, at, err := u32(b, 0)
	if err != nil {
		return nil, err
	}
	out := leb(n + 1)
	for range n {
		start := at
		var s string
		if s, at, err = readName(b, at); err != nil {
			return nil, err
		}
		if strings.HasPrefix(s, ReservedPrefix) {
			return nil, fmt.Errorf("the module exports %q: %w", s, ErrReserved)
		}
		if at >= len(b) {
			return nil, errShort
		}
		out = append(out, b[start:at+1]...) // name, kind
		kind := b[at]
		var idx uint32
		if idx, at, err = u32(b, at+1); err != nil {
			return nil, err
		}
		if kind == 0x00 {
			idx = r.fn(idx)
		}
		out = append(out, leb(idx)...)
	}
	return append(out, append(append(name(FuelExport), 0x03), leb(r.fuel)...)...), nil
}

// elements renumbers the functions of element segments, in all eight encodings.
func (r *rewriter) elements(b []byte) ([]byte, error) {
	n, at, err := u32(b, 0)
	if err != nil {
		return nil, err
	}
	out := leb(n)
	for range n {
		var flags uint32
		if flags, at, err = u32(b, at); err != nil {
			return nil, err
		}
		if flags > 7 {
			return nil, fmt.Errorf("unknown element segment kind %d", flags)
		}
		out = append(out, leb(flags)...)
		if flags&2 != 0 && flags&1 == 0 { // an explicit table index
			start := at
			if at, err = skipLEB(b, at); err != nil {
				return nil, err
			}
			out = append(out, b[start:at]...)
		}
		if flags&1 == 0 { // active: an offset
			if out, at, err = r.expr(out, b, at); err != nil {
				return nil, err
			}
		}
		if flags&3 != 0 { // an element kind or a reference type
			start := at
			if flags&4 == 0 {
				at++
			} else if at, err = skipValType(b, at); err != nil {
				return nil, err
			}
			if at > len(b) {
				return nil, errShort
			}
			out = append(out, b[start:at]...)
		}
		var k uint32
		if k, at, err = u32(b, at); err != nil {
			return nil, err
		}
		out = append(out, leb(k)...)
		for range k {
			if flags&4 != 0 {
				if out, at, err = r.expr(out, b, at); err != nil {
					return nil, err
				}
				continue
			}
			var f uint32
			if f, at, err = u32(b, at); err != nil {
				return nil, err
			}
			out = append(out, leb(r.fn(f))...)
		}
	}
	return out, nil
}

// expr copies a constant expression, up to and with its end, renumbering ref.func.
func (r *rewriter) expr(out, b []byte, at int) ([]byte, int, error) {
	for depth := 0; ; {
		if at >= len(b) {
			return nil, 0, errShort
		}
		op := b[at]
		var err error
		if out, at, err = r.instruction(out, b, at); err != nil {
			return nil, 0, err
		}
		switch {
		case op == 0x02 || op == 0x03 || op == 0x04:
			depth++
		case op == 0x0b && depth == 0:
			return out, at, nil
		case op == 0x0b:
			depth--
		}
	}
}

// instruction copies the instruction at b[at], renumbering the functions it names.
func (r *rewriter) instruction(out, b []byte, at int) ([]byte, int, error) {
	op := b[at]
	if op == 0x10 || op == 0x12 || op == 0xd2 { // call, return_call, ref.func
		f, next, err := u32(b, at+1)
		if err != nil {
			return nil, 0, err
		}
		return append(append(out, op), leb(r.fn(f))...), next, nil
	}
	next, err := skipInstruction(b, at)
	if err != nil {
		return nil, 0, err
	}
	return append(out, b[at:next]...), next, nil
}

func (r *rewriter) code(b []byte) ([]byte, error) {
	n, at, err := u32(b, 0)
	if err != nil {
		return nil, err
	}
	out := leb(n)
	for i := range n {
		size, start, err := u32(b, at)
		if err != nil || start+int(size) > len(b) {
			return nil, fmt.Errorf("function %d: %w", i, errShort)
		}
		body, err := r.body(b[start : start+int(size)])
		if err != nil {
			return nil, fmt.Errorf("function %d: %w", i, err)
		}
		out = append(out, leb(uint32(len(body)))...)
		out = append(out, body...)
		at = start + int(size)
	}
	return out, nil
}

// body meters one function: a unit at entry (unless a loop head comes first) and at
// every loop head, and the size of every bulk operation.
func (r *rewriter) body(b []byte) ([]byte, error) {
	groups, at, err := u32(b, 0)
	if err != nil {
		return nil, err
	}
	var locals uint64
	for range groups { // locals: count, type
		var k uint32
		if k, at, err = u32(b, at); err != nil {
			return nil, err
		}
		if locals += uint64(k); locals > maxLocals {
			return nil, fmt.Errorf("more than %d locals", maxLocals)
		}
		if at, err = skipValType(b, at); err != nil {
			return nil, err
		}
	}
	out := append([]byte(nil), b[:at]...)
	if !loopFirst(b, at) {
		out = r.charge(out)
	}
	for at < len(b) {
		op := b[at]
		if op == 0xfc {
			if sub, _, err := u32(b, at+1); err == nil && bulk(sub) {
				out = r.chargeBulk(out)
			}
		}
		start := at
		if out, at, err = r.instruction(out, b, at); err != nil {
			return nil, fmt.Errorf("at byte %d: %w", start, err)
		}
		if op == 0x03 { // loop
			out = r.charge(out)
		}
	}
	return out, nil
}

// loopFirst reports whether the code at b[at] reaches a loop head before it can
// branch, call or return: then the loop's charge pays for the entry too. Go's
// functions start so (a block, then the loop that resumes them), which halves
// their calls' price.
func loopFirst(b []byte, at int) bool {
	for at < len(b) {
		op := b[at]
		switch {
		case op == 0x03:
			return true
		case op == 0x01, op == 0x02, op >= 0x20 && op <= 0x24, op >= 0x41 && op <= 0x44: // nop, block, locals, globals, consts
		default:
			return false
		}
		var err error
		if at, err = skipInstruction(b, at); err != nil {
			return false
		}
	}
	return false
}

// bulk: memory.init, memory.copy, memory.fill, table.init, table.copy, table.fill,
// whose last operand is a count of bytes or elements.
func bulk(sub uint32) bool {
	return sub == 8 || sub == 10 || sub == 11 || sub == 12 || sub == 14 || sub == 17
}

// charge subtracts one unit: fuel -= 1, then the check.
func (r *rewriter) charge(out []byte) []byte {
	out = append(append(out, 0x23), leb(r.fuel)...) // global.get $fuel
	out = append(out, 0x42, 0x01, 0x7d, 0x24)       // i64.const 1; i64.sub; global.set
	return r.check(append(out, leb(r.fuel)...))     // $fuel
}

// chargeBulk subtracts n >> BulkShift, n being the i32 on top of the stack, which it
// leaves there.
func (r *rewriter) chargeBulk(out []byte) []byte {
	out = append(append(out, 0x24), leb(r.scratch)...)    // global.set $scratch
	out = append(append(out, 0x23), leb(r.fuel)...)       // global.get $fuel
	out = append(append(out, 0x23), leb(r.scratch)...)    // global.get $scratch
	out = append(out, 0xad, 0x42, BulkShift, 0x88)        // i64.extend_i32_u; i64.const; i64.shr_u
	out = append(append(out, 0x7d, 0x24), leb(r.fuel)...) // i64.sub; global.set $fuel
	out = r.check(out)
	return append(append(out, 0x23), leb(r.scratch)...) // global.get $scratch
}

// check calls the tick when the fuel has gone negative: if fuel < 0 { fuel = tick(fuel) }.
func (r *rewriter) check(out []byte) []byte {
	out = append(append(out, 0x23), leb(r.fuel)...) // global.get $fuel
	out = append(out, 0x42, 0x00, 0x53, 0x04, 0x40) // i64.const 0; i64.lt_s; if
	out = append(append(out, 0x23), leb(r.fuel)...) // global.get $fuel
	out = append(append(out, 0x10), leb(r.tick)...) // call $tick
	out = append(append(out, 0x24), leb(r.fuel)...) // global.set $fuel
	return append(out, 0x0b)                        // end
}

// custom keeps a custom section, renumbering the name section's functions; it drops
// DWARF sections, and a name section it cannot parse (names only label traces).
func (r *rewriter) custom(b []byte) ([]byte, bool) {
	s, at, err := readName(b, 0)
	switch {
	case err != nil || strings.HasPrefix(s, ".debug_"):
		return nil, false
	case s != "name":
		return b, true
	}
	out := append([]byte(nil), b[:at]...)
	funcs := false // the section has its function names
	for at < len(b) {
		id := b[at]
		size, start, err := u32(b, at+1)
		if err != nil || start+int(size) > len(b) {
			return nil, false
		}
		sub := b[start : start+int(size)]
		if id > 1 && !funcs {
			out, funcs = append(out, r.funcNames()...), true
		}
		funcs = funcs || id == 1
		if id >= 1 && id <= 3 { // function names, local names, label names
			if sub, err = r.nameMap(sub, id != 1); err != nil {
				return nil, false
			}
		}
		out = append(append(append(out, id), leb(uint32(len(sub)))...), sub...)
		at = start + int(size)
	}
	if !funcs {
		out = append(out, r.funcNames()...)
	}
	r.named = true
	return out, true
}

// nameMap renumbers a name map keyed by function index; indirect maps hold a name
// map per function.
func (r *rewriter) nameMap(b []byte, indirect bool) ([]byte, error) {
	n, at, err := u32(b, 0)
	if err != nil {
		return nil, err
	}
	out := leb(n)
	for range n {
		var f uint32
		if f, at, err = u32(b, at); err != nil {
			return nil, err
		}
		out = append(out, leb(r.fn(f))...)
		start := at
		if indirect {
			var k uint32
			if k, at, err = u32(b, at); err != nil {
				return nil, err
			}
			for range k {
				if at, err = skipLEB(b, at); err == nil {
					at, err = skipName(b, at)
				}
				if err != nil {
					return nil, err
				}
			}
		} else if at, err = skipName(b, at); err != nil {
			return nil, err
		}
		out = append(out, b[start:at]...)
	}
	return out, nil
}

func readName(b []byte, at int) (string, int, error) {
	n, at, err := u32(b, at)
	if err != nil || at+int(n) > len(b) {
		return "", 0, errShort
	}
	return string(b[at : at+int(n)]), at + int(n), nil
}

type section struct {
	id   byte
	body []byte
}

func split(b []byte) ([]section, error) {
	var out []section
	for at := 0; at < len(b); {
		id := b[at]
		n, next, err := u32(b, at+1)
		if err != nil {
			return nil, err
		}
		if next+int(n) > len(b) {
			return nil, fmt.Errorf("section %d runs past the end", id)
		}
		if _, ok := order[id]; !ok && id != secCustom {
			return nil, fmt.Errorf("unknown section %d", id)
		}
		out = append(out, section{id, b[next : next+int(n)]})
		at = next + int(n)
	}
	return out, nil
}

// appendVec adds n encoded items to a vector (count, then items).
func appendVec(vec, items []byte, n uint32) ([]byte, error) {
	k, at, err := u32(vec, 0)
	if err != nil {
		return nil, err
	}
	return append(append(leb(k+n), vec[at:]...), items...), nil
}

func skipName(b []byte, at int) (int, error) {
	n, at, err := u32(b, at)
	if err != nil || at+int(n) > len(b) {
		return 0, errShort
	}
	return at + int(n), nil
}

func skipLimits(b []byte, at int) (int, error) {
	if at >= len(b) {
		return 0, errShort
	}
	flags := b[at]
	at, err := skipLEB(b, at+1)
	if err == nil && flags&1 != 0 {
		at, err = skipLEB(b, at)
	}
	return at, err
}

// skipValType skips a value type: one byte, or a reference type with a heap type.
func skipValType(b []byte, at int) (int, error) {
	if at >= len(b) {
		return 0, errShort
	}
	if b[at] == 0x63 || b[at] == 0x64 { // (ref null ht), (ref ht)
		return skipLEB(b, at+1)
	}
	return at + 1, nil
}

// skipInstruction returns where the instruction at b[at] ends.
func skipInstruction(b []byte, at int) (int, error) {
	op := b[at]
	at++
	switch {
	case op == 0x02 || op == 0x03 || op == 0x04 || op == 0x06: // block, loop, if, try
		return skipBlockType(b, at)
	case op == 0x1f: // try_table: block type, catches
		at, err := skipBlockType(b, at)
		if err != nil {
			return 0, err
		}
		n, at, err := u32(b, at)
		for i := uint32(0); err == nil && i < n; i++ {
			if at >= len(b) {
				return 0, errShort
			}
			kind := b[at]
			at++
			if kind <= 0x01 { // catch, catch_ref: tag
				if at, err = skipLEB(b, at); err != nil {
					return 0, err
				}
			}
			at, err = skipLEB(b, at) // label
		}
		return at, err
	case op <= 0x01, op == 0x05, op == 0x0a, op == 0x0b, op == 0x0f, op == 0x19, op == 0x1a, op == 0x1b,
		op >= 0x45 && op <= 0xc4, op == 0xd1, op == 0xd3, op == 0xd5:
		return at, nil // no immediates
	case op == 0x07, op == 0x08, op == 0x09, op == 0x0c, op == 0x0d, op == 0x10, op == 0x12, op == 0x14, op == 0x15,
		op == 0x18, op >= 0x20 && op <= 0x26, op == 0xd2, op == 0xd4, op == 0xd6:
		return skipLEB(b, at) // one index
	case op == 0x0e: // br_table
		n, at, err := u32(b, at)
		for i := uint32(0); err == nil && i <= n; i++ {
			at, err = skipLEB(b, at)
		}
		return at, err
	case op == 0x11 || op == 0x13: // call_indirect, return_call_indirect
		at, err := skipLEB(b, at)
		if err != nil {
			return 0, err
		}
		return skipLEB(b, at)
	case op == 0x1c: // select t*
		n, at, err := u32(b, at)
		for i := uint32(0); err == nil && i < n; i++ {
			at, err = skipValType(b, at)
		}
		return at, err
	case op >= 0x28 && op <= 0x3e:
		return skipMemArg(b, at)
	case op == 0x3f || op == 0x40: // memory.size, memory.grow
		return skipLEB(b, at)
	case op == 0x41 || op == 0x42:
		return skipLEB(b, at)
	case op == 0x43:
		return fixed(b, at, 4)
	case op == 0x44:
		return fixed(b, at, 8)
	case op == 0xd0: // ref.null: heap type
		return skipLEB(b, at)
	case op == 0xfc:
		return skipMisc(b, at)
	case op == 0xfd:
		return skipSIMD(b, at)
	case op == 0xfe:
		return skipAtomic(b, at)
	}
	return 0, fmt.Errorf("unknown opcode %#x", op)
}

func skipBlockType(b []byte, at int) (int, error) {
	if at >= len(b) {
		return 0, errShort
	}
	if b[at] == 0x63 || b[at] == 0x64 {
		return skipLEB(b, at+1)
	}
	return skipLEB(b, at) // 0x40, a value type, or a type index (s33)
}

func skipMemArg(b []byte, at int) (int, error) {
	align, at, err := u32(b, at)
	if err != nil {
		return 0, err
	}
	if align&(1<<6) != 0 { // multi-memory: a memory index follows
		if at, err = skipLEB(b, at); err != nil {
			return 0, err
		}
	}
	return skipLEB(b, at) // offset
}

func skipMisc(b []byte, at int) (int, error) {
	sub, at, err := u32(b, at)
	if err != nil {
		return 0, err
	}
	switch {
	case sub <= 7: // saturating truncations
		return at, nil
	case sub == 8 || sub == 10 || sub == 12 || sub == 14: // memory.init, memory.copy, table.init, table.copy
		if at, err = skipLEB(b, at); err != nil {
			return 0, err
		}
		return skipLEB(b, at)
	case sub <= 17: // data.drop, memory.fill, elem.drop, table.grow, table.size, table.fill
		return skipLEB(b, at)
	}
	return 0, fmt.Errorf("unknown opcode 0xfc %d", sub)
}

func skipSIMD(b []byte, at int) (int, error) {
	sub, at, err := u32(b, at)
	if err != nil {
		return 0, err
	}
	switch {
	case sub <= 11 || sub == 92 || sub == 93: // loads, stores, load_zero
		return skipMemArg(b, at)
	case sub == 12 || sub == 13: // v128.const, i8x16.shuffle
		return fixed(b, at, 16)
	case sub >= 21 && sub <= 34: // extract_lane, replace_lane
		return fixed(b, at, 1)
	case sub >= 84 && sub <= 91: // load_lane, store_lane
		if at, err = skipMemArg(b, at); err != nil {
			return 0, err
		}
		return fixed(b, at, 1)
	case sub <= 0x113:
		return at, nil
	}
	return 0, fmt.Errorf("unknown opcode 0xfd %d", sub)
}

func skipAtomic(b []byte, at int) (int, error) {
	sub, at, err := u32(b, at)
	if err != nil {
		return 0, err
	}
	switch {
	case sub == 3: // atomic.fence
		return fixed(b, at, 1)
	case sub <= 2 || sub >= 0x10 && sub <= 0x4e:
		return skipMemArg(b, at)
	}
	return 0, fmt.Errorf("unknown opcode 0xfe %d", sub)
}

var errShort = errors.New("truncated")

func fixed(b []byte, at, n int) (int, error) {
	if at+n > len(b) {
		return 0, errShort
	}
	return at + n, nil
}

// u32 reads an unsigned LEB128 of at most 5 bytes.
func u32(b []byte, at int) (uint32, int, error) {
	var v uint32
	for i := 0; i < 5; i++ {
		if at >= len(b) {
			return 0, 0, errShort
		}
		c := b[at]
		at++
		v |= uint32(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			return v, at, nil
		}
	}
	return 0, 0, errors.New("LEB128 too long")
}

// skipLEB skips a LEB128 of any width up to 64 bits, signed or not.
func skipLEB(b []byte, at int) (int, error) {
	for i := 0; i < 10; i++ {
		if at >= len(b) {
			return 0, errShort
		}
		c := b[at]
		at++
		if c&0x80 == 0 {
			return at, nil
		}
	}
	return 0, errors.New("LEB128 too long")
}

func leb(v uint32) []byte {
	var out []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			out = append(out, c|0x80)
			continue
		}
		return append(out, c)
	}
}

// Package loopcheck rewrites a WebAssembly module so that a host can stop it cheaply:
// it adds an exported mutable i32 global and, at the head of every loop, a check
// that traps when the global is non-zero. Setting the global from another goroutine
// stops a running call at its next loop iteration, for the price of one load and
// one predictable branch per iteration.
//
// The alternative, wazero's WithCloseOnContextDone, makes every loop iteration leave
// the compiled code for Go and starts a goroutine per call, which costs a tight loop
// several times its own work. A module without loops cannot run forever except by
// recursion, which the stack limit ends.
//
// Instrument decodes every instruction of the code section to find the loops. It
// knows the core spec with the sign-extension, saturating-conversion, bulk-memory,
// reference-types, multi-value, SIMD, threads, tail-call and exception-handling
// opcodes; on anything else it returns an error, and the host falls back to wazero's
// own mechanism.
package loopcheck

import (
	"errors"
	"fmt"
	"strings"
)

const (
	secCustom = 0
	secImport = 2
	secGlobal = 6
	secExport = 7
	secCode   = 10
)

// order is each section's place in a module; custom sections may go anywhere.
var order = map[byte]int{1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 13: 6, 6: 7, 7: 8, 8: 9, 9: 10, 12: 11, 10: 12, 11: 13}

// Instrument returns bin with the loop checks, and the global exported as name. It
// drops DWARF sections, whose code offsets the checks would shift.
func Instrument(bin []byte, name string) ([]byte, error) {
	if len(bin) < 8 || string(bin[:4]) != "\x00asm" || string(bin[4:8]) != "\x01\x00\x00\x00" {
		return nil, errors.New("not a WebAssembly 1.0 binary")
	}
	// First pass: count imported and defined globals, to index the new one.
	var importedGlobals, definedGlobals uint32
	sections, err := split(bin[8:])
	if err != nil {
		return nil, err
	}
	for _, s := range sections {
		var err error
		switch s.id {
		case secImport:
			importedGlobals, err = countImportedGlobals(s.body)
		case secGlobal:
			definedGlobals, _, err = u32(s.body, 0)
		case secExport:
			err = checkExportFree(s.body, name)
		}
		if err != nil {
			return nil, fmt.Errorf("section %d: %w", s.id, err)
		}
	}
	global := importedGlobals + definedGlobals
	check := append(append([]byte{0x23}, leb(global)...), 0x04, 0x40, 0x00, 0x0b) // global.get; if; unreachable; end

	out := append([]byte(nil), bin[:8]...)
	wroteGlobal, wroteExport := false, false
	emit := func(id byte, body []byte) {
		out = append(out, id)
		out = append(out, leb(uint32(len(body)))...)
		out = append(out, body...)
	}
	newGlobal := []byte{0x7f, 0x01, 0x41, 0x00, 0x0b} // mut i32 = i32.const 0
	newExport := append(append(leb(uint32(len(name))), name...), 0x03)
	newExport = append(newExport, leb(global)...)
	for _, s := range sections {
		if s.id != secCustom {
			if !wroteGlobal && order[s.id] > order[secGlobal] {
				emit(secGlobal, append(leb(1), newGlobal...))
				wroteGlobal = true
			}
			if !wroteExport && order[s.id] > order[secExport] {
				emit(secExport, append(leb(1), newExport...))
				wroteExport = true
			}
		}
		switch s.id {
		case secCustom:
			if n, at, err := u32(s.body, 0); err == nil && at+int(n) <= len(s.body) && strings.HasPrefix(string(s.body[at:at+int(n)]), ".debug_") {
				continue
			}
			emit(s.id, s.body)
		case secGlobal:
			emit(s.id, appendVec(s.body, newGlobal))
			wroteGlobal = true
		case secExport:
			emit(s.id, appendVec(s.body, newExport))
			wroteExport = true
		case secCode:
			code, err := instrumentCode(s.body, check)
			if err != nil {
				return nil, fmt.Errorf("code section: %w", err)
			}
			emit(s.id, code)
		default:
			emit(s.id, s.body)
		}
	}
	if !wroteGlobal {
		emit(secGlobal, append(leb(1), newGlobal...))
	}
	if !wroteExport {
		emit(secExport, append(leb(1), newExport...))
	}
	return out, nil
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

// appendVec adds one encoded item to a vector (count, then items).
func appendVec(vec, item []byte) []byte {
	n, at, err := u32(vec, 0)
	if err != nil {
		return vec
	}
	out := leb(n + 1)
	out = append(out, vec[at:]...)
	return append(out, item...)
}

func countImportedGlobals(b []byte) (uint32, error) {
	n, at, err := u32(b, 0)
	if err != nil {
		return 0, err
	}
	var globals uint32
	for range n {
		for range 2 { // module and field names
			if at, err = skipName(b, at); err != nil {
				return 0, err
			}
		}
		if at >= len(b) {
			return 0, errShort
		}
		kind := b[at]
		at++
		switch kind {
		case 0x00, 0x04: // func: type index; tag: attribute, type index
			if kind == 0x04 {
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
			return 0, fmt.Errorf("unknown import kind %#x", kind)
		}
		if err != nil {
			return 0, err
		}
	}
	return globals, nil
}

func checkExportFree(b []byte, name string) error {
	n, at, err := u32(b, 0)
	if err != nil {
		return err
	}
	for range n {
		l, next, err := u32(b, at)
		if err != nil || next+int(l) > len(b) {
			return errShort
		}
		if string(b[next:next+int(l)]) == name {
			return fmt.Errorf("the module already exports %q", name)
		}
		if _, at, err = u32(b, next+int(l)+1); err != nil { // kind, index
			return err
		}
	}
	return nil
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

// instrumentCode inserts check after every loop's block type.
func instrumentCode(b []byte, check []byte) ([]byte, error) {
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
		body, err := instrumentBody(b[start:start+int(size)], check)
		if err != nil {
			return nil, fmt.Errorf("function %d: %w", i, err)
		}
		out = append(out, leb(uint32(len(body)))...)
		out = append(out, body...)
		at = start + int(size)
	}
	return out, nil
}

func instrumentBody(b []byte, check []byte) ([]byte, error) {
	groups, at, err := u32(b, 0)
	if err != nil {
		return nil, err
	}
	for range groups { // locals: count, type
		if at, err = skipLEB(b, at); err != nil {
			return nil, err
		}
		if at, err = skipValType(b, at); err != nil {
			return nil, err
		}
	}
	out := append([]byte(nil), b[:at]...)
	for at < len(b) {
		op := b[at]
		next, err := skipInstruction(b, at)
		if err != nil {
			return nil, fmt.Errorf("at byte %d: %w", at, err)
		}
		out = append(out, b[at:next]...)
		if op == 0x03 { // loop
			out = append(out, check...)
		}
		at = next
	}
	return out, nil
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

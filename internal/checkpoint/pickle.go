package checkpoint

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"

	"github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/types"
)

// pickledStorage is a torch storage as data.pkl refers to it: the persistent id
// ('storage', <dtype>Storage, key, location, numel). Its bytes are <archive>/data/<key>.
type pickledStorage struct {
	dtype string // safetensors spelling
	key   string
	numel int
}

// pickledTensor is a tensor of a pickled state dict: a view of a storage, as
// torch._utils._rebuild_tensor_v2 rebuilds it. offset and stride count elements.
type pickledTensor struct {
	name    string
	storage *pickledStorage
	offset  int
	shape   []int
	stride  []int
}

// storageTypes maps torch's legacy storage class names, which torch.save still puts
// in the persistent ids, to the dtypes of their elements.
var storageTypes = map[string]string{
	"HalfStorage": "F16", "BFloat16Storage": "BF16", "FloatStorage": "F32", "DoubleStorage": "F64",
	"LongStorage": "I64", "IntStorage": "I32", "ShortStorage": "I16", "CharStorage": "I8",
	"ByteStorage": "U8", "BoolStorage": "BOOL",
}

// storageClass is a pickled reference to one of the torch.<dtype>Storage classes.
type storageClass struct{ dtype string }

// rebuildTensor stands for torch._utils._rebuild_tensor_v2.
type rebuildTensor struct{}

// rebuildParameter stands for torch._utils._rebuild_parameter, which wraps a tensor
// as an nn.Parameter.
type rebuildParameter struct{}

// Call takes (storage, storage_offset, size, stride, requires_grad, backward_hooks)
// and, from newer torch, a trailing metadata argument.
func (rebuildTensor) Call(args ...any) (any, error) {
	if len(args) != 6 && len(args) != 7 {
		return nil, fmt.Errorf("_rebuild_tensor_v2 takes 6 or 7 arguments, got %d", len(args))
	}
	storage, ok := args[0].(*pickledStorage)
	if !ok {
		return nil, fmt.Errorf("_rebuild_tensor_v2: storage is %s, not a persistent storage", describe(args[0]))
	}
	offset, ok := toInt(args[1])
	if !ok || offset < 0 {
		return nil, fmt.Errorf("_rebuild_tensor_v2: storage_offset %s is not a non-negative int", describe(args[1]))
	}
	shape, ok := intTuple(args[2])
	if !ok {
		return nil, fmt.Errorf("_rebuild_tensor_v2: size %s is not a tuple of non-negative ints", describe(args[2]))
	}
	stride, ok := intTuple(args[3])
	if !ok || len(stride) != len(shape) {
		return nil, fmt.Errorf("_rebuild_tensor_v2: stride %s does not match size %v", describe(args[3]), shape)
	}
	return &pickledTensor{storage: storage, offset: offset, shape: shape, stride: stride}, nil
}

// Call takes (data, requires_grad, backward_hooks) and returns data.
func (rebuildParameter) Call(args ...any) (any, error) {
	if len(args) < 1 {
		return nil, errors.New("_rebuild_parameter without arguments")
	}
	t, ok := args[0].(*pickledTensor)
	if !ok {
		return nil, fmt.Errorf("_rebuild_parameter of %s, not a tensor", describe(args[0]))
	}
	return t, nil
}

// findTorchClass resolves the globals a state dict pickle may name beyond the
// builtins gopickle knows (collections.OrderedDict among them); any other global is
// an error, so a pickle cannot smuggle in objects the loader would misread.
func findTorchClass(module, name string) (any, error) {
	switch {
	case module == "torch._utils" && name == "_rebuild_tensor_v2":
		return rebuildTensor{}, nil
	case module == "torch._utils" && name == "_rebuild_parameter":
		return rebuildParameter{}, nil
	case module == "torch":
		if dtype, ok := storageTypes[name]; ok {
			return &storageClass{dtype}, nil
		}
	}
	return nil, fmt.Errorf("unsupported global %s.%s in a state dict", module, name)
}

// loadStorage resolves a persistent id ('storage', class, key, location, numel).
func loadStorage(pid any) (any, error) {
	id, ok := pid.(*types.Tuple)
	if !ok || id.Len() != 5 {
		return nil, fmt.Errorf("persistent id %s is not a 5-tuple", describe(pid))
	}
	if kind, _ := id.Get(0).(string); kind != "storage" {
		return nil, errors.New("persistent id is not a storage")
	}
	class, ok := id.Get(1).(*storageClass)
	key, keyOK := id.Get(2).(string)
	numel, numelOK := toInt(id.Get(4))
	if !ok || !keyOK || !numelOK || numel < 0 {
		return nil, fmt.Errorf("persistent id (%s, %s, %s, %s, %s) is malformed",
			describe(id.Get(0)), describe(id.Get(1)), describe(id.Get(2)), describe(id.Get(3)), describe(id.Get(4)))
	}
	return &pickledStorage{dtype: class.dtype, key: key, numel: numel}, nil
}

// describe names a pickled value for an error message. It never formats containers,
// which a pickle can make self-referential, and gopickle's String methods would
// then recurse until the stack overflows.
func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "None"
	case int, bool, float64, *big.Int:
		return fmt.Sprint(v)
	case string:
		if len(v) > 64 {
			v = v[:64] + "..."
		}
		return strconv.Quote(v)
	case *types.Tuple:
		return "a " + strconv.Itoa(v.Len()) + "-tuple"
	case *pickledTensor:
		return "a tensor"
	}
	return fmt.Sprintf("a %T", v)
}

func toInt(v any) (int, bool) {
	switch n := v.(type) {
	case int:
		return n, true
	case *big.Int:
		if n.IsInt64() && n.Int64() <= math.MaxInt && n.Int64() >= math.MinInt {
			return int(n.Int64()), true
		}
	}
	return 0, false
}

func intTuple(v any) ([]int, bool) {
	t, ok := v.(*types.Tuple)
	if !ok {
		return nil, false
	}
	ints := make([]int, t.Len())
	for i := range ints {
		n, ok := toInt(t.Get(i))
		if !ok || n < 0 {
			return nil, false
		}
		ints[i] = n
	}
	return ints, true
}

// unpickleStateDict reads data.pkl of a torch.save archive holding a state dict: a
// dict or OrderedDict from names to tensors.
func unpickleStateDict(data []byte) (tensors []pickledTensor, err error) {
	if err := checkPickle(data); err != nil {
		return nil, err
	}
	// gopickle indexes and asserts freely on its stack; a malformed pickle must come
	// back as an error, not a crash.
	defer func() {
		if r := recover(); r != nil {
			tensors, err = nil, fmt.Errorf("malformed pickle: %v", r)
		}
	}()
	u := pickle.NewUnpickler(bytes.NewReader(data))
	u.FindClass = findTorchClass
	u.PersistentLoad = loadStorage
	root, err := u.Load()
	if err != nil {
		return nil, err
	}
	add := func(key, value any) error {
		name, ok := key.(string)
		if !ok {
			return fmt.Errorf("state dict key %s is not a string", describe(key))
		}
		t, ok := value.(*pickledTensor)
		if !ok {
			return fmt.Errorf("state dict entry %s is %s, not a tensor", name, describe(value))
		}
		named := *t // one tensor object may be pickled under several names
		named.name = name
		tensors = append(tensors, named)
		return nil
	}
	switch dict := root.(type) {
	case *types.OrderedDict:
		for e := dict.List.Front(); e != nil; e = e.Next() {
			entry := e.Value.(*types.OrderedDictEntry)
			if err := add(entry.Key, entry.Value); err != nil {
				return nil, err
			}
		}
	case *types.Dict:
		for _, entry := range *dict {
			if err := add(entry.Key, entry.Value); err != nil {
				return nil, err
			}
		}
	default:
		return nil, fmt.Errorf("the pickle holds %s, not a state dict", describe(root))
	}
	return tensors, nil
}

// checkPickle walks the opcodes of a pickle up to STOP and checks that every argument
// fits in data. gopickle allocates a declared length before reading it, so without
// this a few corrupt bytes could ask for terabytes.
func checkPickle(data []byte) error {
	for i := 0; i < len(data); {
		op := data[i]
		i++
		var fixed, lines, lengthBytes int
		switch op {
		case '.': // STOP
			return nil
		case '(', '0', '1', '2', 'N', 'Q', 'R', 'a', 'b', 'd', '}', 'e', 'l', ']', 'o', 's', 't', ')', 'u',
			0x81, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8f, 0x90, 0x91, 0x92, 0x93, 0x94, 0x97, 0x98:
		case 'K', 'h', 'q', 0x80, 0x82:
			fixed = 1
		case 'M', 0x83:
			fixed = 2
		case 'J', 'j', 'r', 0x84:
			fixed = 4
		case 'G':
			fixed = 8
		case 'I', 'L', 'F', 'S', 'V', 'P', 'g', 'p':
			lines = 1
		case 'c', 'i':
			lines = 2
		case 'U', 'C', 0x8a, 0x8c:
			lengthBytes = 1
		case 'T', 'B', 'X', 0x8b:
			lengthBytes = 4
		case 0x8d, 0x8e, 0x96, 0x95:
			lengthBytes = 8
		default:
			return fmt.Errorf("pickle: unknown opcode 0x%02x at byte %d", op, i-1)
		}
		for range lines {
			end := bytes.IndexByte(data[i:], '\n')
			if end < 0 {
				return fmt.Errorf("pickle: opcode 0x%02x at byte %d: unterminated line", op, i-1)
			}
			i += end + 1
		}
		if lengthBytes > 0 {
			if len(data)-i < lengthBytes {
				return fmt.Errorf("pickle: opcode 0x%02x at byte %d: truncated length", op, i-1)
			}
			var length uint64
			switch lengthBytes {
			case 1:
				length = uint64(data[i])
			case 4:
				length = uint64(binary.LittleEndian.Uint32(data[i:]))
			case 8:
				length = binary.LittleEndian.Uint64(data[i:])
			}
			i += lengthBytes
			if length > uint64(len(data)-i) {
				return fmt.Errorf("pickle: opcode 0x%02x declares %d bytes, %d remain", op, length, len(data)-i)
			}
			if op != 0x95 { // a FRAME's contents are more opcodes
				i += int(length)
			}
		}
		if fixed > len(data)-i {
			return fmt.Errorf("pickle: opcode 0x%02x at byte %d: truncated argument", op, i-1)
		}
		i += fixed
	}
	return errors.New("pickle: no STOP opcode")
}

// pickler writes the protocol 2 opcodes torch.save emits for a state dict.
type pickler struct{ bytes.Buffer }

func (p *pickler) global(module, name string) {
	p.WriteString("c" + module + "\n" + name + "\n")
}

func (p *pickler) str(s string) { // BINUNICODE
	p.WriteByte('X')
	p.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(s))))
	p.WriteString(s)
}

// int writes a non-negative n in the shortest form Python's pickler would choose.
func (p *pickler) int(n int) {
	switch {
	case n < 1<<8: // BININT1
		p.WriteByte('K')
		p.WriteByte(byte(n))
	case n < 1<<16: // BININT2
		p.WriteByte('M')
		p.Write(binary.LittleEndian.AppendUint16(nil, uint16(n)))
	case n < 1<<31: // BININT
		p.WriteByte('J')
		p.Write(binary.LittleEndian.AppendUint32(nil, uint32(n)))
	default: // LONG1: little-endian two's complement, top bit clear
		var digits []byte
		for v := uint64(n); ; v >>= 8 {
			digits = append(digits, byte(v))
			if v < 0x80 {
				break
			}
		}
		p.WriteByte(0x8a)
		p.WriteByte(byte(len(digits)))
		p.Write(digits)
	}
}

func (p *pickler) tuple(ints []int) {
	if len(ints) == 0 {
		p.WriteByte(')') // EMPTY_TUPLE
		return
	}
	p.WriteByte('(') // MARK
	for _, n := range ints {
		p.int(n)
	}
	p.WriteByte('t') // TUPLE
}

func (p *pickler) emptyOrderedDict() {
	p.global("collections", "OrderedDict")
	p.WriteString(")R") // EMPTY_TUPLE, REDUCE
}

// setItemsBatch is the number of entries per SETITEMS, as in Python's pickler.
const setItemsBatch = 1000

// pickleStateDict returns data.pkl for an OrderedDict of tensors, the way torch.save
// writes a state dict: each tensor is _rebuild_tensor_v2 applied to a persistent
// storage id, its offset, size, stride, requires_grad=False and empty hooks.
func pickleStateDict(tensors []pickledTensor) ([]byte, error) {
	storageClasses := make(map[string]string, len(storageTypes))
	for class, dtype := range storageTypes {
		storageClasses[dtype] = class
	}
	var p pickler
	p.WriteString("\x80\x02") // PROTO 2
	p.emptyOrderedDict()
	for start := 0; start < len(tensors); start += setItemsBatch {
		p.WriteByte('(')
		for _, t := range tensors[start:min(start+setItemsBatch, len(tensors))] {
			class, ok := storageClasses[t.storage.dtype]
			if !ok {
				return nil, fmt.Errorf("tensor %s: no torch storage for dtype %s", t.name, t.storage.dtype)
			}
			p.str(t.name)
			p.global("torch._utils", "_rebuild_tensor_v2")
			p.WriteByte('(')
			p.WriteByte('(')
			p.str("storage")
			p.global("torch", class)
			p.str(t.storage.key)
			p.str("cpu")
			p.int(t.storage.numel)
			p.WriteString("tQ") // TUPLE, BINPERSID
			p.int(t.offset)
			p.tuple(t.shape)
			p.tuple(t.stride)
			p.WriteByte(0x89) // NEWFALSE
			p.emptyOrderedDict()
			p.WriteString("tR") // TUPLE, REDUCE
		}
		p.WriteByte('u') // SETITEMS
	}
	p.WriteByte('.') // STOP
	return p.Bytes(), nil
}

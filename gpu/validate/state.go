package validate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/kvsim/kvsim/policies/host"
)

// StateKey names a validated cell by policy and budget value.
type StateKey struct {
	Policy string
	Budget host.Budget
}

// maxStateBytes bounds the state file read on resume: a cell's line is under
// 1 KiB, so this is room for a quarter of a million cells.
const maxStateBytes = 256 << 20

// ReadState reads the finished cells of a state file; a missing file has none. A
// torn last line (an interrupted write, a full disk) is cut off the file, so that
// the next cell appended starts a line of its own.
func ReadState(path string) (map[StateKey]Cell, error) {
	cells := map[StateKey]Cell{}
	if path == "" {
		return cells, nil
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return cells, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxStateBytes+1))
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("state %s: %w", path, err)
	}
	if len(data) > maxStateBytes {
		return nil, fmt.Errorf("state %s: larger than %d MiB; is it a state file?", path, maxStateBytes>>20)
	}
	complete := 0 // bytes of whole, readable lines
	for line := 1; complete < len(data); line++ {
		text, rest, ended := bytes.Cut(data[complete:], []byte("\n"))
		var c Cell
		err := json.Unmarshal(text, &c)
		if !ended || (err != nil && len(bytes.TrimSpace(rest)) == 0) {
			break // the last line, torn by an interruption
		}
		if err != nil {
			return nil, fmt.Errorf("state %s:%d: %w", path, line, err)
		}
		if c.BudgetSpec == (host.Budget{}) {
			return nil, fmt.Errorf("state %s:%d: cell %s @ %s has no budget_spec (written by an older kvsim): give this run a new -state", path, line, c.Policy, c.Budget)
		}
		cells[StateKey{c.Policy, c.BudgetSpec}] = c
		complete += len(text) + 1
	}
	if complete < len(data) {
		if err := os.Truncate(path, int64(complete)); err != nil {
			return nil, fmt.Errorf("state %s: cutting off the torn last line: %w", path, err)
		}
	}
	return cells, nil
}

// AppendState adds a finished cell to the state file.
func AppendState(path string, c *Cell) error {
	if path == "" {
		return nil
	}
	line, err := json.Marshal(c)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("state %s: %w", path, err)
	}
	return f.Close()
}

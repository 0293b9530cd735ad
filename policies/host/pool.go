package host

import (
	"errors"
	"fmt"
	"sync"

	"github.com/kvsim/kvsim/policies"
)

// Bound is what one layer's budget bounds for one sequence: each head alone
// (PoolHead), or the layer's heads together (PoolLayer, and PoolModel with the
// layer's share of the model's pool).
//
// For a pool, "entries per head" in every figure and in peak accounting is the
// layer's entries divided by its heads: a pool of Heads×B entries is charged as B per
// head whichever heads hold them, so that pooled and per-head policies compare at
// equal memory.
type Bound struct {
	Pool      policies.Pool
	Unbounded bool
	Heads     int
	Budget    int // the nominal per-head budget B
	Entries   int // a pool's entries, slack not counted: Heads×B, or the layer's share
	Slack     int // per head; a pool may hold Heads×Slack more during decoding
}

// NewBound is the bound of a layer with this config and layout; share is the layer's
// entry of the model pool's division (read for PoolModel only).
func NewBound(cfg policies.Config, layout policies.Layout, share int) Bound {
	b := Bound{Pool: layout.Pool, Unbounded: layout.Unbounded, Heads: cfg.Heads, Budget: cfg.Budget, Slack: layout.Slack}
	switch layout.Pool {
	case policies.PoolLayer:
		b.Entries = cfg.Heads * cfg.Budget
	case policies.PoolModel:
		b.Entries = share
	}
	return b
}

// Pooled reports whether the heads share the budget.
func (b Bound) Pooled() bool { return b.Pool != policies.PoolHead }

// String names the pool in errors.
func (b Bound) String() string {
	if b.Pooled() {
		return fmt.Sprintf("%v pool of %d entries", b.Pool, b.Entries)
	}
	return fmt.Sprintf("budget of %d per head", b.Budget)
}

// Need fills e's request for the tables' current contents and reports whether any
// victims are needed. The compression (Prefill) asks for what exceeds the budget;
// a decode step for what exceeds budget and slack. A per-head budget sets Need[h]
// (resident − B, minus Slack in decode); a pool sets PoolNeed (the layer's resident
// − Entries, minus Heads×Slack in decode) and leaves Need all zero.
func (b Bound) Need(e *policies.Eviction, tables []policies.SlotTable, phase policies.Phase) bool {
	clear(e.Need)
	e.PoolNeed = 0
	if b.Unbounded {
		return false
	}
	slack := 0
	if phase == policies.Decode {
		slack = b.Slack
	}
	if b.Pooled() {
		e.PoolNeed = max(0, Resident(tables)-b.Entries-b.Heads*slack)
		return e.PoolNeed > 0
	}
	any := false
	for h := range tables {
		n := max(0, tables[h].Resident()-b.Budget-slack)
		e.Need[h] = int32(n)
		any = any || n > 0
	}
	return any
}

// Resident is the tokens the tables hold together.
func Resident(tables []policies.SlotTable) int {
	n := 0
	for h := range tables {
		n += tables[h].Resident()
	}
	return n
}

// CheckHeld checks what the layer holds after a decode step's eviction: no head
// more than Budget+Slack, or the pool no more than Entries + Heads×Slack.
func (b Bound) CheckHeld(tables []policies.SlotTable) error {
	if b.Unbounded {
		return nil
	}
	if b.Pooled() {
		if n, most := Resident(tables), b.Entries+b.Heads*b.Slack; n > most {
			return fmt.Errorf("the %v holds %d tokens, over %d with slack %d per head", b, n, most, b.Slack)
		}
		return nil
	}
	for h := range tables {
		if n := tables[h].Resident(); n > b.Budget+b.Slack {
			return fmt.Errorf("head %d holds %d tokens: budget %d, slack %d", h, n, b.Budget, b.Slack)
		}
	}
	return nil
}

// CheckCap checks peak accounting's cap while a decode query attends: each head's
// entries (tokens, plus the compensation slot when comp is set) at most limit, or,
// for a pool, the layer's entries at most its share plus Heads×(limit − B), which
// keeps the model's entries within Layers×Heads×limit whatever the division.
func (b Bound) CheckCap(tables []policies.SlotTable, comp bool, limit int) error {
	if b.Unbounded {
		return nil
	}
	extra := 0
	if comp {
		extra = 1
	}
	if b.Pooled() {
		n, most := Resident(tables)+extra*b.Heads, b.Entries+b.Heads*(limit-b.Budget)
		if n > most {
			return fmt.Errorf("the %v holds %d entries while attending, over its peak cap of %d (%d per head)", b, n, most, limit)
		}
		return nil
	}
	for h := range tables {
		if n := tables[h].Resident() + extra; n > limit {
			return fmt.Errorf("head %d holds %d entries while attending, over the peak cap of %d", h, n, limit)
		}
	}
	return nil
}

// Division is a model pool's division among layers for one sequence
// (LayerBudgeter), computed once by the first layer that asks and shared by all:
// replay runs a sequence's layers in different workers, and every layer must use the
// same division. It is safe for concurrent use.
type Division struct {
	once    sync.Once
	budget  int
	entries []int
	err     error
}

// Share returns layer cfg.Layer's entries. The first call divides the pool by
// calling budgets (the policy's LayerBudgets, through whatever guard the host uses)
// with cfg.Layer = -1, and checks the division: one entry per layer, none negative,
// summing to at most Layers×Heads×Budget. Every layer must ask with the same nominal
// budget.
func (d *Division) Share(cfg policies.Config, budgets func(cfg policies.Config, entries []int) error) (int, error) {
	d.once.Do(func() {
		d.budget = cfg.Budget
		d.entries, d.err = divide(cfg, budgets)
	})
	switch {
	case d.err != nil:
		return 0, d.err
	case cfg.Budget != d.budget:
		return 0, fmt.Errorf("model pool: layer %d has nominal budget %d, but the pool was divided at %d", cfg.Layer, cfg.Budget, d.budget)
	case cfg.Layer < 0 || cfg.Layer >= len(d.entries):
		return 0, fmt.Errorf("model pool: layer %d of %d", cfg.Layer, len(d.entries))
	}
	return d.entries[cfg.Layer], nil
}

func divide(cfg policies.Config, budgets func(cfg policies.Config, entries []int) error) ([]int, error) {
	if cfg.Layers < 1 || cfg.Layers > maxLayers {
		return nil, fmt.Errorf("model pool: %d layers, want 1..%d", cfg.Layers, maxLayers)
	}
	entries := make([]int, cfg.Layers)
	model := cfg
	model.Layer = -1
	if err := budgets(model, entries); err != nil {
		return nil, fmt.Errorf("layer budgets: %w", err)
	}
	pool := cfg.Layers * cfg.Heads * cfg.Budget
	sum := 0
	for l, n := range entries {
		if n < 0 || n > pool-sum {
			return nil, fmt.Errorf("layer budgets: layer %d gets %d entries: the division must be non-negative and sum to at most the model pool of %d (%d layers × %d heads × budget %d)",
				l, n, pool, cfg.Layers, cfg.Heads, cfg.Budget)
		}
		sum += n
	}
	return entries, nil
}

// maxLayers bounds a model's layers before a division allocates for them.
const maxLayers = 1 << 16

// LayerBudgets is policy p's LayerBudgets, for Division.Share; p must implement
// policies.LayerBudgeter when its layout asks for a model pool.
func LayerBudgets(p policies.Policy) (func(policies.Config, []int) error, error) {
	lb, ok := p.(policies.LayerBudgeter)
	if !ok {
		return nil, errNoLayerBudgets
	}
	return lb.LayerBudgets, nil
}

var errNoLayerBudgets = errors.New("the layout asks for a model pool, but the policy has no LayerBudgets method")

package press

import "github.com/kvsim/kvsim/policies"

// ForkingScorer is a Scorer whose state after the prompt does not depend on the
// budget, so that a press built on it forks across budgets (policies.Forker).
type ForkingScorer interface {
	Scorer
	// ForkTo gives dst, a scorer of the same type and params whose press was
	// Init'ed for the same sequence at another budget and shown no prompt rows,
	// the state this scorer holds after the whole prompt.
	ForkTo(dst Scorer) error
}

// NewForking is New for a ForkingScorer: the press it returns also implements
// policies.Forker, copying the tokens it stores and then forking the scorer.
func NewForking(name string, s ForkingScorer, opt Options) policies.Policy {
	return &forking{New(name, s, opt)}
}

type forking struct{ *Press }

// ForkTo hands dst the prompt's stored keys and values and the scorer's state.
func (f *forking) ForkTo(dst policies.Policy) error {
	p := f.Press
	d, ok := dst.(*forking)
	same := ok && d.name == p.name && d.opt.StoreKeys == p.opt.StoreKeys && d.opt.StoreValues == p.opt.StoreValues
	if same {
		a, b := p.cfg, d.cfg
		a.Budget, b.Budget = 0, 0
		same = a == b
	}
	switch {
	case !same:
		return p.errorf("fork: destination is not a %s press of the same sequence", p.name)
	case p.next != p.cfg.PromptLen || d.next != 0:
		return p.errorf("fork: source has seen %d and destination %d of %d prompt rows, want all and none",
			p.next, d.next, p.cfg.PromptLen)
	}
	// The prompt's tokens sit in slots 0..P-1 of every head, below both widths.
	n := p.cfg.PromptLen * p.cfg.HeadDim
	for h := range p.cfg.Heads {
		from, to := h*p.tokens.width*p.cfg.HeadDim, h*d.tokens.width*p.cfg.HeadDim
		if p.opt.StoreKeys {
			copy(d.tokens.keys[to:to+n], p.tokens.keys[from:from+n])
		}
		if p.opt.StoreValues {
			copy(d.tokens.values[to:to+n], p.tokens.values[from:from+n])
		}
	}
	d.next = p.next
	if err := p.scorer.(ForkingScorer).ForkTo(d.scorer); err != nil {
		return p.errorf("fork: %w", err)
	}
	return nil
}

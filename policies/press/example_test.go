package press_test

import (
	"fmt"

	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/press"
	"github.com/kvsim/kvsim/policies/press/presstest"
)

// firstKey keeps, per head, the tokens with the largest first key element.
type firstKey struct{ t *press.Tokens }

func (f *firstKey) Start(cfg policies.Config, t *press.Tokens) error { f.t = t; return nil }
func (f *firstKey) Observe(*policies.Attention) error                { return nil }
func (f *firstKey) Score(h int, slots []int32, scores []float64) {
	for i, s := range slots {
		scores[i] = float64(f.t.Key(h, s)[0])
	}
}

func newFirstKey(p *policies.Params) (policies.Policy, error) {
	opt, err := press.ReadOptions(p, press.Options{StoreKeys: true, Decode: press.Score})
	if err != nil {
		return nil, fmt.Errorf("firstkey: %w", err)
	}
	return press.New("firstkey", &firstKey{}, opt), nil
}

// The press of the package doc on one head whose key at position p starts with 7p mod 5:
// 0 2 4 1 3 0 for the prompt, then 2 and 4.
func Example_writingAPress() {
	p, err := newFirstKey(policies.NewParams(nil))
	if err != nil {
		fmt.Println(err)
		return
	}
	seq := presstest.Sequence{Heads: 1, HeadDim: 2, PromptLen: 6, MaxLen: 8,
		Key: func(h, pos int) []float32 { return []float32{float32(pos * 7 % 5), 0} }}
	log, err := presstest.Run(p, policies.Config{Budget: 3}, seq)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, ev := range log.Events {
		fmt.Printf("%v at %d evicts positions %v\n", ev.Phase, ev.Pos, ev.Victims[0])
	}
	fmt.Println("resident at the end:", log.Resident[0])
	// Output:
	// prefill at 5 evicts positions [0 5 3]
	// decode at 6 evicts positions [1]
	// decode at 7 evicts positions [6]
	// resident at the end: [2 4 7]
}

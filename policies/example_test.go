package policies_test

import (
	"fmt"

	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/policytest"
)

// lowest evicts, per head, the resident tokens the newest query attends to least:
// the rule of TOVA (policies/tova, which adds a layer-wise variant and more checks).
// The three methods are the whole contract.
type lowest struct {
	res   policies.Residency // which position each slot holds, per head
	score [][]float64        // per head and slot: the newest query's attention
}

func (p *lowest) Init(cfg policies.Config) (policies.Layout, error) {
	if err := policies.CheckConfig(cfg); err != nil {
		return policies.Layout{}, err
	}
	p.res.Reset(cfg)
	width := policies.SlotWidth(cfg, policies.Layout{})
	p.score = make([][]float64, cfg.Heads)
	for h := range p.score {
		p.score[h] = make([]float64, width)
	}
	return policies.Layout{}, nil
}

func (p *lowest) Observe(a *policies.Attention) error {
	p.res.Enter(a) // a decode step's new token entered a.Slot[h]
	for h := range a.Heads {
		newest := a.Row(h, a.Rows-1) // by slot, Stride long; free slots hold 0
		for s := range p.score[h] {
			p.score[h][s] = 0
			if s < len(newest) {
				p.score[h][s] = float64(newest[s])
			}
		}
	}
	return nil
}

func (p *lowest) Evict(e *policies.Eviction) error {
	for h := range e.Heads {
		for range e.Need[h] {
			victim := int32(-1)
			for s, pos := range p.res.Heads[h].Positions()[:len(p.score[h])] {
				if pos >= 0 && (victim < 0 || p.score[h][s] < p.score[h][victim]) {
					victim = int32(s)
				}
			}
			e.Victim(h, victim, 0)
			p.res.Free(h, victim)
		}
	}
	return nil
}

// A policy is three methods over flat arrays. To write your own, copy a builtin:
// policies/h2o for one that scores tokens by attention, policies/window for one that
// only needs positions; then add it to policies/builtin. policytest runs it through
// the protocol on a small synthetic sequence and checks every victim it names.
func Example_writingAPolicy() {
	seq := policytest.RandomSequence(2, 12, 16, 1) // 2 heads, 12 prompt tokens, 16 in all
	log, err := policytest.Run(&lowest{}, policies.Config{Layers: 1, HeadDim: 64, Budget: 6}, seq)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, ev := range log.Events[:2] {
		fmt.Printf("%v at %d: head 0 evicts positions %v\n", ev.Phase, ev.Pos, ev.VictimPos[0])
	}
	fmt.Println("resident at the end, head 0:", log.Resident[0])
	// Output:
	// prefill at 11: head 0 evicts positions [3 6 4 5 1 7]
	// decode at 12: head 0 evicts positions [2]
	// resident at the end, head 0: [0 10 11 13 14 15]
}

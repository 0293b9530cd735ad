package window_test

import (
	"reflect"
	"testing"

	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/policytest"
	"github.com/kvsim/kvsim/policies/window"
)

func run(t *testing.T, params map[string]any, budget int) *policytest.Log {
	t.Helper()
	p, err := window.New(policies.NewParams(params))
	if err != nil {
		t.Fatal(err)
	}
	log, err := policytest.Run(p, policies.Config{Budget: budget}, policytest.RandomSequence(2, 8, 10, 1))
	if err != nil {
		t.Fatal(err)
	}
	return log
}

// Sinks 0 and 1 stay; compression drops 2..5; each decode step drops the oldest
// non-sink token.
func TestSinkAndWindow(t *testing.T) {
	log := run(t, map[string]any{"sink": 2.0}, 4)
	var got [][]int
	for _, e := range log.Events {
		got = append(got, e.VictimPos[1])
	}
	if want := [][]int{{2, 3, 4, 5}, {6}, {7}}; !reflect.DeepEqual(got, want) {
		t.Errorf("victims %v, want %v", got, want)
	}
	if want := []int{0, 1, 8, 9}; !reflect.DeepEqual(log.Resident[0], want) {
		t.Errorf("resident %v, want %v", log.Resident[0], want)
	}
}

// A budget smaller than the sinks keeps Budget-1 sinks and one recent token.
func TestSmallBudgetShrinksSinks(t *testing.T) {
	log := run(t, nil, 2)
	if want := []int{0, 9}; !reflect.DeepEqual(log.Resident[0], want) {
		t.Errorf("resident %v, want %v", log.Resident[0], want)
	}
}

func TestBadParams(t *testing.T) {
	if _, err := window.New(policies.NewParams(map[string]any{"sink": -1.0})); err == nil || err.Error() != `param "sink": must be ≥ 0, got -1` {
		t.Errorf("negative sink: %v", err)
	}
	if _, err := window.New(policies.NewParams(map[string]any{"recent": 1.0})); err == nil || err.Error() != `unknown param "recent"` {
		t.Errorf("unknown param: %v", err)
	}
}

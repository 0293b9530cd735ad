package random_test

import (
	"reflect"
	"testing"

	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/policytest"
	"github.com/kvsim/kvsim/policies/random"
)

func victims(t *testing.T, seed uint64) [][]int {
	t.Helper()
	p, err := random.New(policies.NewParams(nil))
	if err != nil {
		t.Fatal(err)
	}
	log, err := policytest.Run(p, policies.Config{Budget: 5, Seed: seed}, policytest.RandomSequence(3, 40, 50, 2))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]int
	for _, e := range log.Events {
		out = append(out, e.VictimPos...)
	}
	if log.PeakResident != 6 {
		t.Errorf("peak resident %d, want budget+1", log.PeakResident)
	}
	return out
}

func TestSeeded(t *testing.T) {
	a, b, c := victims(t, 1), victims(t, 1), victims(t, 2)
	if !reflect.DeepEqual(a, b) {
		t.Error("same seed, different victims")
	}
	if reflect.DeepEqual(a, c) {
		t.Error("different seeds, same victims")
	}
	if reflect.DeepEqual(a[0], a[1]) {
		t.Error("heads share one random stream")
	}
}

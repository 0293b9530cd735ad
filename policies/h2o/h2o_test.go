package h2o_test

import (
	"math"
	"reflect"
	"testing"

	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/h2o"
	"github.com/kvsim/kvsim/policies/policytest"
)

// weights[t][j] are unnormalized attention weights of query t on token j.
var weights = [][]float64{
	{1},
	{1, 1},
	{2, 1, 1},
	{1, 1, 1, 1},
	{2, 1, 1, 3, 3},
	{1, 9, 9, 9, 1, 2}, // tokens 1–3 are gone by then; only 0, 4, 5 count
	{1, 9, 9, 9, 1, 5, 1},
}

func sequence() policytest.Sequence {
	return policytest.Sequence{Heads: 1, PromptLen: 5, MaxLen: 7,
		Logit: func(h, t, j int) float64 { return math.Log(weights[t][j]) }}
}

// TestChoiceOnSmallMatrix works H2O through by hand at a budget of 2 (1 recent, 1
// heavy). Prompt column sums: S0 = 1+.5+.5+.25+.2 = 2.45, S1 = 1.1, S2 = .6,
// S3 = .55, S4 = .3. Compression keeps the recent token 4 and the heaviest other, 0,
// evicting 3, 2, 1 (lowest score first). Step 5 sees {0, 4, 5} with weights 1, 1, 2:
// S0 = 2.7, S4 = .55, S5 = .5; the window protects 5, so 4 goes. Step 6 sees
// {0, 5, 6} with weights 1, 5, 1: S0 = 2.7+1/7, S5 = .5+5/7; 6 is protected, 0 stays.
func TestChoiceOnSmallMatrix(t *testing.T) {
	p, err := h2o.New(policies.NewParams(nil))
	if err != nil {
		t.Fatal(err)
	}
	log, err := policytest.Run(p, policies.Config{Budget: 2}, sequence())
	if err != nil {
		t.Fatal(err)
	}
	var got [][]int
	for _, e := range log.Events {
		got = append(got, e.VictimPos[0])
	}
	want := [][]int{{3, 2, 1}, {4}, {5}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("victims %v, want %v", got, want)
	}
	if !reflect.DeepEqual(log.Resident[0], []int{0, 6}) {
		t.Errorf("resident at the end %v, want [0 6]", log.Resident[0])
	}
	if log.PeakResident != 3 { // budget + the new token
		t.Errorf("peak %d", log.PeakResident)
	}
}

func TestRecentShare(t *testing.T) {
	// With recent_share 0 only one recent token is kept (the new one) and the rest are
	// heavy: compression keeps 0 and 1 (S1 = 1.1 beats S2, S3 and the window's 4).
	p, err := h2o.New(policies.NewParams(map[string]any{"recent_share": 0.0}))
	if err != nil {
		t.Fatal(err)
	}
	log, err := policytest.Run(p, policies.Config{Budget: 3}, sequence())
	if err != nil {
		t.Fatal(err)
	}
	if got := log.Events[0].VictimPos[0]; !reflect.DeepEqual(got, []int{3, 2}) {
		t.Errorf("compression victims %v, want [3 2]", got)
	}
}

func TestParams(t *testing.T) {
	for _, tc := range []struct {
		params map[string]any
		want   string
	}{
		{map[string]any{"recent_share": 1.0}, `param "recent_share": must be in [0, 1), got 1`},
		{map[string]any{"recent_share": "x"}, `param "recent_share": want a number, got x`},
		{map[string]any{"heavy": 3.0}, `unknown param "heavy"`},
	} {
		_, err := h2o.New(policies.NewParams(tc.params))
		if err == nil || err.Error() != tc.want {
			t.Errorf("%v: %v, want %q", tc.params, err, tc.want)
		}
	}
}

package validate

import (
	"strings"
	"testing"
)

// The table shows each cell's interval and its difference from the reference
// (the numbers are validate's TestValidationIntervals).
func TestValidationTable(t *testing.T) {
	nll := func(x float64) *float64 { return &x }
	cell := func(policy string, agree []float64, nlls []*float64) ValidatedCell {
		c := ValidatedCell{Cell: Cell{Policy: policy, Budget: "10%", Samples: len(agree)}}
		for i, a := range agree {
			c.PerSample = append(c.PerSample, SampleMetrics{Agreement: a, NLL: nlls[i]})
		}
		return c
	}
	res := Validation{Compare: "h2o", Cells: []ValidatedCell{
		cell("auv", []float64{0.2, 0.4, 0.6}, []*float64{nll(1), nll(2), nil}),
		cell("h2o", []float64{0.1, 0.4, 0.4}, []*float64{nll(2), nll(2), nll(2)}),
	}}
	AddIntervals(&res)
	var b strings.Builder
	if err := Write(&b, &res, "table"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"0.4000 ±0.4968", "+0.1000 ±0.2484", "Minus h2o at the same budget"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}

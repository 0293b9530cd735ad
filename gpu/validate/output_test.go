package validate

import (
	"strings"
	"testing"
)

// The table shows each cell's interval and its difference from the reference
// (the numbers are TestValidationIntervals').
func TestValidationTable(t *testing.T) {
	res := handValidation()
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

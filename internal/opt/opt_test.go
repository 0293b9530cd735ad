package opt

import (
	"slices"
	"strings"
	"testing"
)

func TestShapes(t *testing.T) {
	var names []string
	for _, s := range Shapes() {
		names = append(names, s.Name)
	}
	want := []string{"opt-125m", "opt-350m", "opt-1.3b", "opt-2.7b", "opt-6.7b", "opt-13b", "opt-30b", "opt-66b"}
	if !slices.Equal(names, want) || !slices.Equal(Names(), want) {
		t.Errorf("names %v and %v, want %v", names, Names(), want)
	}
	s, err := Lookup("opt-13b")
	if err != nil || s != (Shape{"opt-13b", 40, 40, 128}) {
		t.Errorf("Lookup(opt-13b) = %+v, %v", s, err)
	}
	if _, err := Lookup("opt-7b"); err == nil || !strings.Contains(err.Error(), "opt-6.7b") {
		t.Errorf("Lookup(opt-7b) error = %v, want one listing the known sizes", err)
	}
}

package cuda

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
)

func TestPipeline(t *testing.T) {
	items := []int{3, 5, 8, 13, 21}
	for _, workers := range []int{0, 1, 2, 8} {
		var mu sync.Mutex
		var waited, worked []int
		err := pipeline(items, workers, func(x int) error {
			waited = append(waited, x)
			return nil
		}, func(x int) error {
			mu.Lock()
			worked = append(worked, x)
			mu.Unlock()
			if x == 8 || x == 21 {
				return fmt.Errorf("item %d", x)
			}
			return nil
		})
		if !slices.Equal(waited, items) {
			t.Errorf("workers %d: waited for %v, want %v in order", workers, waited, items)
		}
		if workers <= 1 && !slices.Equal(worked, items) {
			t.Errorf("workers %d: worked on %v, want %v in order", workers, worked, items)
		}
		slices.Sort(worked)
		if !slices.Equal(worked, items) {
			t.Errorf("workers %d: worked on %v, want each of %v once", workers, worked, items)
		}
		// The first failing item's error, whichever finished first.
		if err == nil || err.Error() != "item 8" {
			t.Errorf("workers %d: error %v, want item 8's", workers, err)
		}
	}

	// A failed wait stops the pipeline: nothing after it is worked on.
	var worked []int
	err := pipeline(items, 1, func(x int) error {
		if x == 13 {
			return errors.New("device lost")
		}
		return nil
	}, func(x int) error {
		worked = append(worked, x)
		return errors.New("work error")
	})
	if err == nil || err.Error() != "device lost" || !slices.Equal(worked, []int{3, 5, 8}) {
		t.Errorf("failed wait: error %v, worked on %v", err, worked)
	}
}

package sim

import (
	"sync"

	"github.com/kvsim/kvsim/policies/host"
)

// divisions holds the model-pool divisions of a replay, one per (cell, sample),
// shared by the workers that run the sample's layers. An entry is dropped once every
// layer has taken its share.
type divisions struct {
	mu sync.Mutex
	m  map[[2]int]*division
}

type division struct {
	host.Division
	left int // layers yet to take their share
}

// get returns the division of instance idx's cell for sample; every layer of the
// sample calls it once.
func (d *divisions) get(idx, sample, layers int) *host.Division {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m == nil {
		d.m = map[[2]int]*division{}
	}
	key := [2]int{idx, sample}
	e := d.m[key]
	if e == nil {
		e = &division{left: layers}
		d.m[key] = e
	}
	if e.left--; e.left <= 0 {
		delete(d.m, key)
	}
	return &e.Division
}

package wasmhost

import (
	"sync"
	"sync/atomic"
	"time"
)

// watchdog stops an instance's call once it has run past the deadline. The call path
// pays two uncontended atomic adds; no clock is read and no timer is armed per call.
// A goroutine wakes every half deadline and calls interrupt when it sees the same
// call in flight three wakeups in a row: at least one full deadline, and at most one
// and a half. interrupt sets the module's loopcheck global, or cancels the context
// wazero watches.
type watchdog struct {
	// calls counts entries and exits: odd while a call is in flight.
	calls     atomic.Uint64
	hit       atomic.Bool
	interrupt func()
	done      chan struct{}
	stopOnce  sync.Once
}

func newWatchdog(deadline time.Duration, interrupt func()) *watchdog {
	w := &watchdog{interrupt: interrupt, done: make(chan struct{})}
	go w.run(max(deadline/2, time.Millisecond))
	return w
}

func (w *watchdog) run(tick time.Duration) {
	t := time.NewTicker(tick)
	defer t.Stop()
	var last uint64
	same := 0
	for {
		select {
		case <-w.done:
			return
		case <-t.C:
		}
		c := w.calls.Load()
		if c&1 == 1 && c == last {
			if same++; same == 2 {
				w.hit.Store(true)
				w.interrupt()
				return
			}
		} else {
			same = 0
		}
		last = c
	}
}

func (w *watchdog) enter() {
	if w != nil {
		w.calls.Add(1)
	}
}

func (w *watchdog) leave() {
	if w != nil {
		w.calls.Add(1)
	}
}

// fired reports whether the watchdog stopped a call.
func (w *watchdog) fired() bool { return w != nil && w.hit.Load() }

// stop ends the watchdog's goroutine.
func (w *watchdog) stop() {
	if w != nil {
		w.stopOnce.Do(func() { close(w.done) })
	}
}

package cuda

import "sync"

// pipeline calls work(item) for each item as soon as wait(item) has returned,
// waiting in the order of items, with up to workers calls of work running at once
// (one at a time, in order, when workers ≤ 1) while the waits go on. It returns
// the first wait's error, after which no more work starts, or else the error of
// the first item whose work failed.
//
// In decode each observed layer's attention lands on the host while the GPU still
// computes the layers after it: the policies observe it meanwhile, on the host's
// cores.
func pipeline(items []int, workers int, wait, work func(int) error) error {
	workers = max(1, workers)
	running := make(chan struct{}, workers)
	errs := make([]error, len(items))
	var wg sync.WaitGroup
	var waitErr error
	for i, it := range items {
		if waitErr = wait(it); waitErr != nil {
			break
		}
		running <- struct{}{}
		wg.Go(func() {
			defer func() { <-running }()
			errs[i] = work(it)
		})
	}
	wg.Wait()
	if waitErr != nil {
		return waitErr
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

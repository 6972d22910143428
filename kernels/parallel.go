package kernels

import (
	"sync"
	"sync/atomic"
)

// Parallel runs fn over [0,n) split into the contiguous chunks [0,grain),
// [grain,2·grain), …, on up to threads goroutines (the caller's included),
// and returns when every chunk is done. The chunk boundaries depend only on
// n and grain, never on threads, so a kernel that writes disjoint outputs
// per chunk gives identical results for any thread count. threads ≤ 1 runs
// the chunks in order on the calling goroutine; grain < 1 is taken as 1.
func Parallel(threads, n, grain int, fn func(lo, hi int)) {
	ParallelWorkers(threads, n, grain, func(_, lo, hi int) { fn(lo, hi) })
}

// ParallelWorkers is Parallel that also tells fn which goroutine runs the
// chunk (0 is the caller, then 1 to threads−1), so fn can use per-worker
// scratch without locking.
func ParallelWorkers(threads, n, grain int, fn func(worker, lo, hi int)) {
	if n <= 0 {
		return
	}
	grain = max(grain, 1)
	chunks := (n + grain - 1) / grain
	threads = min(threads, chunks)
	if threads <= 1 {
		for lo := 0; lo < n; lo += grain {
			fn(0, lo, min(lo+grain, n))
		}
		return
	}
	var next atomic.Int64
	work := func(worker int) {
		for {
			chunk := int(next.Add(1) - 1)
			if chunk >= chunks {
				return
			}
			lo := chunk * grain
			fn(worker, lo, min(lo+grain, n))
		}
	}
	var wg sync.WaitGroup
	wg.Add(threads - 1)
	for t := 1; t < threads; t++ {
		go func() {
			defer wg.Done()
			work(t)
		}()
	}
	work(0)
	wg.Wait()
}

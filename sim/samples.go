package sim

import (
	"slices"

	"github.com/kvsim/kvsim/internal/stats"
)

// mergeSamples fills each cell's per-sample figures, its accounting, nominal budget
// and KV bytes, from the job results.
func mergeSamples(res *Result, specs []PolicySpec, jobs []job, results []jobResult) {
	nb := len(res.Budgets)
	type acc struct {
		statSums
		nominal, kvPeak, kvMean float64
	}
	for c := range res.Cells {
		cell := &res.Cells[c]
		cell.Accounting = specs[c/nb].Accounting.String()
		if cell.Failed != "" {
			continue
		}
		accs := make([]acc, res.Samples)
		samples := make([]SampleResult, res.Samples)
		for i := range samples {
			samples[i].Layers = make([]Metrics, res.Layers)
		}
		for ji, r := range results {
			sample, layer := jobs[ji].sample, jobs[ji].layer
			st, a := r.stats[c], &accs[sample]
			a.add(st)
			a.nominal += float64(r.nominal[c])
			entryBytes := float64(2*r.headDim*KVBytesPerValue + r.stateBytes[c])
			a.kvPeak += float64(st.headPeakSum) * entryBytes
			if st.n > 0 {
				steps := st.n / float64(r.heads)
				a.kvMean += st.residentSum / steps * entryBytes
				samples[sample].Layers[layer] = sampleMetrics(res.HasV, st.hit, st.topk, st.outErr, st.n)
			}
			cell.StateBytesPerToken = r.stateBytes[c]
		}
		for i, a := range accs {
			s := &samples[i]
			s.Steps = a.n
			s.NominalTokens = a.nominal / float64(res.Layers)
			s.PeakResident = float64(a.peak)
			s.PeakKVBytes, s.MeanKVBytes = a.kvPeak, a.kvMean
			if a.n > 0 {
				s.Metrics = sampleMetrics(res.HasV, a.hit, a.topk, a.outErr, a.n)
				s.MeanResident = a.resident / a.n
			}
			cell.NominalTokens += s.NominalTokens / float64(res.Samples)
			cell.PeakKVBytes += s.PeakKVBytes / float64(res.Samples)
			cell.MeanKVBytes += s.MeanKVBytes / float64(res.Samples)
		}
		cell.Samples = samples
	}
}

// statSums adds up instance statistics, per cell or per sample, in job order.
type statSums struct {
	hit, topk, outErr, n, resident float64
	peak                           int
}

func (s *statSums) add(st instanceStats) {
	s.hit += st.hit
	s.topk += st.topk
	s.outErr += st.outErr
	s.n += st.n
	s.resident += st.residentSum
	s.peak = max(s.peak, st.peak)
}

func sampleMetrics(hasV bool, hit, topk, outErr, n float64) Metrics {
	m := Metrics{HitRate: hit / n, TopKHitRate: topk / n}
	if hasV {
		m.OutputError = outErr / n
	}
	return m
}

// summarize computes each cell's intervals over samples and, with a reference
// policy, its paired differences from the reference at the same budget.
func summarize(res *Result) {
	ref := slices.Index(res.Policies, res.Compare)
	for i := range res.Policies {
		for j := range res.Budgets {
			c := res.Cell(i, j)
			c.CI = intervals(c.Samples, nil, res.HasV) // undefined for a failed cell: no samples
			if c.Failed != "" || ref < 0 || ref == i || res.Cell(ref, j).Failed != "" {
				continue
			}
			c.Diff = &Diff{Reference: res.Compare, MetricIntervals: intervals(c.Samples, res.Cell(ref, j).Samples, res.HasV)}
		}
	}
}

// intervals are the metrics' intervals over samples; with ref, those of the paired
// differences from ref.
func intervals(samples, ref []SampleResult, hasV bool) MetricIntervals {
	one := func(get func(*Metrics) float64) stats.Interval {
		xs := make([]float64, len(samples))
		for i := range samples {
			xs[i] = get(&samples[i].Metrics)
		}
		if ref == nil {
			return stats.MeanCI(xs)
		}
		ys := make([]float64, len(ref))
		for i := range ref {
			ys[i] = get(&ref[i].Metrics)
		}
		return stats.PairedCI(xs, ys)
	}
	m := MetricIntervals{
		HitRate:     one(func(m *Metrics) float64 { return m.HitRate }),
		TopKHitRate: one(func(m *Metrics) float64 { return m.TopKHitRate }),
		OutputError: stats.MeanCI(nil),
	}
	if hasV {
		m.OutputError = one(func(m *Metrics) float64 { return m.OutputError })
	}
	return m
}

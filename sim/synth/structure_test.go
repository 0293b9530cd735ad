package synth

import (
	"math"
	"testing"

	"github.com/kvsim/kvsim/sim/kvtrace"
)

// causalAttention is the reference softmax: row t of the result holds query t's
// attention over keys 0..t, computed in float64 from one head's q and k.
func causalAttention(q, k []float32, tokens, headDim int) [][]float64 {
	rows := make([][]float64, tokens)
	for t := range tokens {
		row := make([]float64, t+1)
		peak := math.Inf(-1)
		for j := range row {
			var logit float64
			for d := range headDim {
				logit += float64(q[t*headDim+d]) * float64(k[j*headDim+d])
			}
			row[j] = logit
			peak = math.Max(peak, logit)
		}
		var sum float64
		for j := range row {
			row[j] = math.Exp(row[j] - peak)
			sum += row[j]
		}
		for j := range row {
			row[j] /= sum
		}
		rows[t] = row
	}
	return rows
}

// TestAttentionStructure measures the five designed phenomena on the softmax of the
// generated q and k (4 layers × 8 heads × 64 dims, 256 prompt + 32 generated tokens,
// Seed 1). The bands bracket the measured figures, given in the comments.
func TestAttentionStructure(t *testing.T) {
	const layers, heads, headDim, prompt, gen = 4, 8, 64, 256, 32
	const tokens, window, firstQuery = prompt + gen, 16, 32
	tr := mustNew(t, Options{Preset: "opt-125m", Layers: layers, Heads: heads, HeadDim: headDim,
		PromptLen: prompt, GenLen: gen, Seed: 1})
	switchAt := tr.switchAt

	var sinkShare, sinkQueries float64 // token 0's share, layers ≥ 2
	var recentMass, recentUniform float64
	var heavyMass, heavyCount, plainMass, plainCount float64
	// [before the switch, after the ramp]: late and ordinary tokens' attention
	var lateMass, lateCount, ordMass, ordCount [2]float64
	entropies := make([]float64, 0, layers*heads)

	for layer := range layers {
		q, k := mustRead(t, tr, kvtrace.Q, layer), mustRead(t, tr, kvtrace.K, layer)
		for h := range heads {
			hs := tr.headSample(layer, h)
			size := tokens * headDim
			attn := causalAttention(q[h*size:(h+1)*size], k[h*size:(h+1)*size], tokens, headDim)
			var entropy float64
			for tq := firstQuery; tq < tokens; tq++ {
				row := attn[tq]
				var e float64
				for _, a := range row {
					if a > 0 {
						e -= a * math.Log(a)
					}
				}
				entropy += e / math.Log(float64(len(row)))
				if layer >= 2 {
					sinkShare += row[0]
					sinkQueries++
				}
				for j := tq - window + 1; j <= tq; j++ {
					recentMass += row[j]
				}
				recentUniform += window / float64(tq+1)
				phase := -1
				switch {
				case tq < switchAt:
					phase = 0
				case tq >= switchAt+switchRamp:
					phase = 1
				}
				// Keys outside the sinks and the recency window.
				for j := 4; j <= tq-window; j++ {
					heavy, late := hs.heavyWeight(j) > 0, hs.lateWeight(j) > 0
					switch {
					case heavy:
						heavyMass += row[j]
						heavyCount++
					case late && phase >= 0:
						lateMass[phase] += row[j]
						lateCount[phase]++
					case !late:
						plainMass += row[j]
						plainCount++
						if phase >= 0 {
							ordMass[phase] += row[j]
							ordCount[phase]++
						}
					}
				}
			}
			entropies = append(entropies, entropy/float64(tokens-firstQuery))
		}
	}

	sink := sinkShare / sinkQueries
	recency := recentMass / recentUniform
	heavy := (heavyMass / heavyCount) / (plainMass / plainCount)
	lateBefore := (lateMass[0] / lateCount[0]) / (ordMass[0] / ordCount[0])
	lateAfter := (lateMass[1] / lateCount[1]) / (ordMass[1] / ordCount[1])
	lowest, highest := math.Inf(1), math.Inf(-1)
	for _, e := range entropies {
		lowest, highest = math.Min(lowest, e), math.Max(highest, e)
	}
	t.Logf("switch at %d; sink share %.3f; last-%d mass %.2f× uniform; heavy hitters %.1f× ordinary; late tokens %.2f× ordinary before the switch, %.1f× after; head entropies %.2f..%.2f",
		switchAt, sink, window, recency, heavy, lateBefore, lateAfter, lowest, highest)

	checks := []struct {
		name      string
		got       float64
		low, high float64
	}{
		// Measured: 0.322, 2.30, 6.3, 0.89, 6.5, 0.14 and 1.00.
		{"token 0's mean attention share in layers 2-3", sink, 0.25, 0.40},
		{"last-16 mass over its uniform share", recency, 2, 3},
		{"heavy hitters' mean attention over ordinary tokens'", heavy, 5, 8},
		{"late tokens over ordinary tokens, before the switch", lateBefore, 0.8, 1.25},
		{"late tokens over ordinary tokens, after the switch", lateAfter, 5, 8},
		{"lowest head entropy (normalized)", lowest, 0, 0.2},
		{"highest head entropy (normalized)", highest, 0.95, 1},
	}
	for _, c := range checks {
		if c.got < c.low || c.got > c.high {
			t.Errorf("%s = %.3f, want within [%g, %g]", c.name, c.got, c.low, c.high)
		}
	}
}

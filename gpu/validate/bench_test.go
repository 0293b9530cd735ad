package validate_test

import (
	"context"
	"testing"
	"time"

	"github.com/kvsim/kvsim/gpu/validate"
)

// BenchmarkDecodeInLoop decodes the tiny model's 12-token prompt plus 64 tokens at a
// budget of 8, and reports the time inside the policy and the whole decode per token.
func BenchmarkDecodeInLoop(b *testing.B) {
	e := tinyEngine(b)
	for _, name := range []string{"window", "h2o", "auv"} {
		b.Run(name, func(b *testing.B) {
			var policy, decode time.Duration
			var tokens int
			for b.Loop() {
				d, err := validate.Decode(context.Background(), e, prompt, newBuiltin(b, name),
					validate.Options{Budget: 8, MaxNew: 64, IgnoreEOS: true})
				if err != nil {
					b.Fatal(err)
				}
				policy += d.PolicyTime
				decode += d.Decode
				tokens += len(d.Tokens)
			}
			b.ReportMetric(float64(policy.Microseconds())/float64(tokens), "policy-µs/tok")
			b.ReportMetric(float64(decode.Microseconds())/float64(tokens), "decode-µs/tok")
		})
	}
}

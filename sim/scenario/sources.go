package scenario

import (
	"github.com/kvsim/kvsim/sim"
	"github.com/kvsim/kvsim/sim/kvtrace"
	"github.com/kvsim/kvsim/sim/synth"
)

func (s *Scenario) checkSynth() error {
	if s.Synth.Samples < 1 {
		return s.errorf("synth.samples", "synth.samples = %d: want at least 1", s.Synth.Samples)
	}
	if err := s.synthOptions(0).Validate(); err != nil {
		return s.errorf("synth", "%v", err)
	}
	return nil
}

func (s *Scenario) synthOptions(sample int) synth.Options {
	y := s.Synth
	withV := y.WithV == nil || *y.WithV
	seed := y.Seed
	if seed == 0 {
		seed = s.Seed
	}
	return synth.Options{Preset: y.Preset, Layers: y.Layers, Heads: y.Heads, HeadDim: y.HeadDim,
		PromptLen: y.PromptLen, GenLen: y.GenLen, Positions: y.Positions, Sample: sample, Seed: seed, WithV: withV}
}

// Options are the replay options the scenario sets.
func (s *Scenario) Options() sim.Options {
	return sim.Options{
		Budgets:       s.budgets,
		TopK:          s.Metrics.TopK,
		Seed:          s.Seed,
		Threads:       s.Run.Threads,
		BlockRows:     s.Run.BlockRows,
		NoOutputError: s.Metrics.OutputError != nil && !*s.Metrics.OutputError,
		Accounting:    s.accounting,
		Compare:       s.Compare,
	}
}

// Sources opens the scenario's traces: files first, then synthetic samples. The caller
// closes them with Close.
func (s *Scenario) Sources() ([]sim.Source, error) {
	var out []sim.Source
	paths, err := s.TracePaths()
	if err != nil {
		return nil, err
	}
	for _, p := range paths {
		t, err := kvtrace.Open(p)
		if err != nil {
			Close(out)
			return nil, err
		}
		out = append(out, t)
	}
	if s.Synth != nil {
		for i := 0; i < s.Synth.Samples; i++ {
			t, err := synth.New(s.synthOptions(i))
			if err != nil {
				Close(out)
				return nil, s.errorf("synth", "%v", err)
			}
			out = append(out, t)
		}
	}
	return out, nil
}

// Close closes sources that hold files.
func Close(sources []sim.Source) {
	for _, src := range sources {
		if c, ok := src.(interface{ Close() error }); ok {
			c.Close()
		}
	}
}

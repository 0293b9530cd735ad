package scenario

import (
	"strings"

	"github.com/kvsim/kvsim/models"
)

// Capture is the [capture] table: traces captured on the fly from a model, before
// the replay, as `kvsim capture` would write them. Paths are relative to the
// scenario's directory; "builtin:NAME" names a model embedded in kvsim and
// "builtin:NAME/FILE" a file beside it (package models).
type Capture struct {
	Model string `toml:"model"`
	Data  string `toml:"data"`
	// Field names of the JSONL records; empty keeps tracecap's defaults (XSUM's).
	DocumentField string `toml:"document_field"`
	SummaryField  string `toml:"summary_field"`
	IDField       string `toml:"id_field"`
	// Template is the prompt, with one {document}; empty is tracecap's default.
	Template        string `toml:"template"`
	Samples         int    `toml:"samples"`
	Offset          int    `toml:"offset"`
	GenTokens       int    `toml:"gen_tokens"`
	MaxPromptTokens int    `toml:"max_prompt_tokens"`
	IgnoreEOS       bool   `toml:"ignore_eos"`
	Device          string `toml:"device"`
}

// checkCapture checks the [capture] table and fills its defaults.
func (s *Scenario) checkCapture() error {
	c := s.Capture
	if c.Model == "" || c.Data == "" {
		return s.errorf("capture", "[capture] needs model (a checkpoint directory or builtin:NAME) and data (a JSONL file)")
	}
	if c.Samples < 0 || c.Offset < 0 || c.GenTokens < 0 || c.MaxPromptTokens < 0 {
		return s.errorf("capture", "[capture]: samples, offset, gen_tokens and max_prompt_tokens must be ≥ 0")
	}
	if c.GenTokens == 0 {
		c.GenTokens = 64
	}
	if c.Device == "" {
		c.Device = "cpu"
	}
	return nil
}

// ResolvePath resolves a model or data path of the [capture] or [validate] table:
// builtin: names are written out from the binary (models.Resolve), others are
// relative to the scenario's directory.
func (s *Scenario) ResolvePath(p string) (string, error) {
	if strings.HasPrefix(p, models.Scheme) {
		path, err := models.Resolve(p)
		if err != nil {
			return "", s.errorf("", "%v", err)
		}
		return path, nil
	}
	return s.relative(p), nil
}

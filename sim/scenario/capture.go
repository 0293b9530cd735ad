package scenario

// Dataset is what the [capture] and [validate] tables share: a model, the JSONL
// records to run it over and how prompts are built from them. Paths are relative to
// the scenario's directory; "builtin:NAME" names a model embedded in kvsim and
// "builtin:NAME/FILE" a file beside it (package internal/models; the command line
// resolves them, so that parsing opens nothing).
type Dataset struct {
	Model string `toml:"model"`
	Data  string `toml:"data"`
	// Field names of the JSONL records; empty keeps internal/dataset's defaults (XSUM's).
	DocumentField string `toml:"document_field"`
	SummaryField  string `toml:"summary_field"`
	IDField       string `toml:"id_field"`
	// Template is the prompt, with one {document}; empty is internal/dataset's default.
	Template        string `toml:"template"`
	Samples         int    `toml:"samples"`
	Offset          int    `toml:"offset"`
	GenTokens       int    `toml:"gen_tokens"`
	MaxPromptTokens int    `toml:"max_prompt_tokens"`
	IgnoreEOS       bool   `toml:"ignore_eos"`
	Device          string `toml:"device"`
}

// Capture is the [capture] table: traces captured on the fly from a model, before
// the replay, as `kvsim capture` would write them.
type Capture struct {
	Dataset
}

// checkDataset checks the model, data and counts of table ("capture" or "validate")
// and fills their defaults.
func (s *Scenario) checkDataset(table string, d *Dataset) error {
	if d.Model == "" || d.Data == "" {
		return s.errorf(table, "[%s] needs model (a checkpoint directory or builtin:NAME) and data (a JSONL file)", table)
	}
	if d.Samples < 0 || d.Offset < 0 || d.GenTokens < 0 || d.MaxPromptTokens < 0 {
		return s.errorf(table, "[%s]: samples, offset, gen_tokens and max_prompt_tokens must be ≥ 0", table)
	}
	if d.GenTokens == 0 {
		d.GenTokens = 64
	}
	if d.Device == "" {
		d.Device = "cpu"
	}
	return nil
}

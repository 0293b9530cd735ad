package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/kvsim/kvsim/internal/models"
	"github.com/kvsim/kvsim/internal/render"
	"github.com/kvsim/kvsim/internal/tokenizer"
	"github.com/kvsim/kvsim/sim/attnstats"
	"github.com/kvsim/kvsim/sim/kvtrace"
)

func runTraceStats(e *env, args []string) error {
	fs := newFlags(e, "trace stats", "trace stats [-format table|markdown|json] [-model DIR] FILE...",
		"Measures the structure of the traces' full-cache attention, per layer and head, over\n"+
			"every query from position 2 of every file: the mean attention on the first token\n"+
			"(the sink), on the previous token and on the query itself, and the share of queries\n"+
			"whose most attended token is the sink, or the previous token. A head where that\n"+
			"share is above half is counted as a sink head, or a previous-token head. Then how\n"+
			"peaked the rows are (the mean largest probability, and the effective number of\n"+
			"keys, exp of a row's entropy) and the tokens most often most attended, shown as\n"+
			"text with the vocabulary of -model, or of the embedded model the traces name.\n"+
			"With a vocabulary, a head whose most attended key is a delimiter (punctuation or\n"+
			"a line break) in more than half of its rows is counted as a delimiter head.")
	format := fs.String("format", "table", "output format: table, markdown or json")
	modelDir := fs.String("model", "", "checkpoint `DIR` (or builtin:NAME) whose vocabulary shows the top keys as text (default: the embedded model the traces were captured from, if any)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if !slices.Contains([]string{"table", "markdown", "json"}, *format) {
		return usageError{fmt.Errorf("trace stats: -format %q: want table, markdown or json", *format)}
	}
	if fs.NArg() == 0 {
		return usageError{fmt.Errorf("trace stats: want at least one FILE")}
	}
	var st attnstats.Stats
	var tok *tokenizer.Tokenizer
	for i, path := range fs.Args() {
		t, err := kvtrace.Open(path)
		if err != nil {
			return err
		}
		if i == 0 {
			if tok, err = vocabulary(*modelDir, t.Meta().Model); err != nil {
				t.Close()
				return err
			}
			st.Delimiter = delimiters(tok)
		}
		err = st.Add(t, t.Tokens())
		t.Close()
		if err != nil {
			return err
		}
	}
	sum := st.Summary()
	if *format == "json" {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			attnstats.Stats
			Summary attnstats.Summary `json:"summary"`
		}{st, sum})
	}
	pct := func(x float64) string { return strconv.FormatFloat(100*x, 'f', 1, 64) + "%" }
	rows := make([][]string, len(st.PerHead))
	for i, h := range st.PerHead {
		kind := ""
		switch {
		case h.SinkHead():
			kind = "sink"
		case h.PreviousHead():
			kind = "previous"
		case h.DelimiterHead():
			kind = "delimiter"
		}
		var top []string
		for _, k := range h.TopKeys {
			top = append(top, tokenText(tok, k.Token)+" "+pct(k.Share))
		}
		rows[i] = []string{strconv.Itoa(h.Layer), strconv.Itoa(h.Head), kind, pct(h.Sink), pct(h.Previous), pct(h.Self),
			pct(h.SinkTop), pct(h.PreviousTop), pct(h.DelimiterTop), pct(h.Peak), strconv.FormatFloat(h.Keys, 'f', 1, 64), strings.Join(top, ", ")}
	}
	src := st.Source
	if src == kvtrace.SourceSynthetic {
		src += " (not an OPT measurement)"
	}
	fmt.Fprintf(e.stdout, "model %s, source=%s; %d %s × %d layers × %d heads; %d query rows per head\n",
		st.Model, src, st.Samples, plural(st.Samples, "sample"), st.Layers, st.Heads, st.PerHead[0].Rows)
	fmt.Fprintf(e.stdout, "sink (token 0): %s of attention, mean over heads; most attended in most rows of %d of %d heads\n",
		pct(sum.Sink), sum.SinkHeads, sum.Heads)
	fmt.Fprintf(e.stdout, "previous token: %s of attention, mean over heads; most attended in most rows of %d of %d heads\n",
		pct(sum.Previous), sum.PreviousHeads, sum.Heads)
	fmt.Fprintf(e.stdout, "the query itself: %s of attention, mean over heads\n", pct(sum.Self))
	if tok != nil {
		fmt.Fprintf(e.stdout, "a delimiter (punctuation, a line break): most attended in most rows of %d of %d heads\n", sum.DelimiterHeads, sum.Heads)
	}
	fmt.Fprintf(e.stdout, "peak: the largest probability of a row is %s on average; %.1f effective keys of the %.1f a row has\n\n",
		pct(sum.Peak), sum.Keys, sum.Width)
	header := []string{"layer", "head", "kind", "sink", "previous", "self", "sink top", "previous top", "delimiter top", "peak", "keys",
		"top keys (share of rows)"}
	return render.WriteTable(e.stdout, header, rows, *format == "markdown", 3)
}

// vocabulary loads the tokenizer of dir (a checkpoint directory or builtin:NAME), or
// with no dir that of the embedded model whose name the traces carry; nil when there
// is none.
func vocabulary(dir, traceModel string) (*tokenizer.Tokenizer, error) {
	if dir == "" {
		for _, name := range models.Names() {
			if traceModel == "kvsim/"+name {
				dir = models.Scheme + name
			}
		}
		if dir == "" {
			return nil, nil
		}
	}
	path, err := models.Resolve(dir)
	if err != nil {
		return nil, fmt.Errorf("trace stats: -model: %w", err)
	}
	tok, err := tokenizer.Load(path)
	if err != nil {
		return nil, fmt.Errorf("trace stats: -model: %w", err)
	}
	return tok, nil
}

// delimiters returns whether a token of tok is a delimiter: its text is punctuation
// and spaces only, or holds a line break. nil without a vocabulary.
func delimiters(tok *tokenizer.Tokenizer) func(int32) bool {
	if tok == nil {
		return nil
	}
	is := make([]bool, tok.VocabSize())
	for id := range is {
		text, err := tok.DecodeKnown([]int32{int32(id)})
		if err != nil || strings.TrimSpace(text) == "" && !strings.Contains(text, "\n") {
			continue
		}
		is[id] = strings.Contains(text, "\n") || !strings.ContainsFunc(text, func(r rune) bool {
			return !unicode.IsPunct(r) && !unicode.IsSpace(r)
		})
	}
	return func(id int32) bool { return id >= 0 && int(id) < len(is) && is[id] }
}

// tokenText shows a token id as its text in quotes, with Go's escapes for newlines
// and the like, or as #id without a vocabulary.
func tokenText(tok *tokenizer.Tokenizer, id int32) string {
	if tok != nil {
		if text, err := tok.DecodeKnown([]int32{id}); err == nil && text != "" {
			return strconv.Quote(text)
		}
	}
	return "#" + strconv.Itoa(int(id))
}

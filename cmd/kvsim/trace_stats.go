package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"github.com/kvsim/kvsim/internal/render"
	"github.com/kvsim/kvsim/sim/attnstats"
	"github.com/kvsim/kvsim/sim/kvtrace"
)

func runTraceStats(e *env, args []string) error {
	fs := newFlags(e, "trace stats", "trace stats [-format table|markdown|json] FILE...",
		"Measures the structure of the traces' full-cache attention, per layer and head, over\n"+
			"every query from position 2 of every file: the mean attention on the first token\n"+
			"(the sink), on the previous token and on the query itself, and the share of queries\n"+
			"whose most attended token is the sink, or the previous token. A head where that\n"+
			"share is above half is counted as a sink head, or a previous-token head.")
	format := fs.String("format", "table", "output format: table, markdown or json")
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
	for _, path := range fs.Args() {
		t, err := kvtrace.Open(path)
		if err != nil {
			return err
		}
		err = st.Add(t)
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
		}
		rows[i] = []string{strconv.Itoa(h.Layer), strconv.Itoa(h.Head), kind, pct(h.Sink), pct(h.Previous), pct(h.Self),
			pct(h.SinkTop), pct(h.PreviousTop)}
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
	fmt.Fprintf(e.stdout, "the query itself: %s of attention, mean over heads\n\n", pct(sum.Self))
	header := []string{"layer", "head", "kind", "sink", "previous", "self", "sink top", "previous top"}
	return render.WriteTable(e.stdout, header, rows, *format == "markdown", 3)
}

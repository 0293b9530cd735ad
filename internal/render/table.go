// Package render draws what the stages report: ASCII and Markdown tables and
// line-plot figures (.png, .svg, .pdf), written atomically. It knows nothing of
// replay or validate results.
package render

import (
	"fmt"
	"io"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/renderer"
	"github.com/olekukonko/tablewriter/tw"
)

// Formats lists the output formats of replay, validate and merge.
var Formats = []string{"table", "csv", "json", "markdown"}

// newTable makes a table whose first textColumns columns are labels, aligned left,
// and whose others are numbers, aligned right.
func newTable(w io.Writer, markdown bool, textColumns int) *tablewriter.Table {
	align := make([]tw.Align, textColumns)
	for i := range align {
		align[i] = tw.AlignLeft
	}
	opts := []tablewriter.Option{
		tablewriter.WithHeaderAutoFormat(tw.Off),
		tablewriter.WithRowAlignmentConfig(tw.CellAlignment{Global: tw.AlignRight, PerColumn: align}),
		tablewriter.WithHeaderAlignment(tw.AlignCenter),
	}
	if markdown {
		opts = append(opts, tablewriter.WithRenderer(renderer.NewMarkdown()))
	} else {
		opts = append(opts, tablewriter.WithRenderer(renderer.NewBlueprint(tw.Rendition{Symbols: tw.NewSymbols(tw.StyleASCII)})))
	}
	return tablewriter.NewTable(w, opts...)
}

// WriteTable renders rows under header as an ASCII table, or a Markdown one, in
// kvsim's style: the first textColumns columns are labels, aligned
// left, and the others numbers, aligned right.
func WriteTable(w io.Writer, header []string, rows [][]string, markdown bool, textColumns int) error {
	t := newTable(w, markdown, textColumns)
	t.Header(header)
	for _, row := range rows {
		if err := t.Append(row); err != nil {
			return err
		}
	}
	return t.Render()
}

// Heading writes a table's title: a line of its own, bold in Markdown.
func Heading(w io.Writer, markdown bool, title string) {
	if markdown {
		fmt.Fprintf(w, "\n**%s**\n\n", title)
	} else {
		fmt.Fprintf(w, "\n%s\n", title)
	}
}

package render

import (
	"bytes"
	"testing"
)

// TestWriteTable: labels align left, numbers right, and Markdown gets its own
// separator row; a heading is a line of its own, bold in Markdown.
func TestWriteTable(t *testing.T) {
	var b bytes.Buffer
	rows := [][]string{{"h2o", "0.5"}, {"window", "12.25"}}
	if err := WriteTable(&b, []string{"policy", "hit"}, rows, false, 1); err != nil {
		t.Fatal(err)
	}
	want := "+--------+-------+\n" +
		"| policy |  hit  |\n" +
		"+--------+-------+\n" +
		"| h2o    |   0.5 |\n" +
		"| window | 12.25 |\n" +
		"+--------+-------+\n"
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	Heading(&b, true, "Title")
	if err := WriteTable(&b, []string{"policy", "hit"}, rows, true, 1); err != nil {
		t.Fatal(err)
	}
	want = "\n**Title**\n\n" +
		"| policy |  hit  |\n" +
		"|:-------|------:|\n" +
		"| h2o    |   0.5 |\n" +
		"| window | 12.25 |\n"
	if b.String() != want {
		t.Errorf("markdown:\n%s\nwant:\n%s", b.String(), want)
	}
}

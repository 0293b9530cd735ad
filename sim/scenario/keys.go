package scenario

import (
	"fmt"
	"strings"
)

// keyLines maps dotted key paths ("policy.params.k", "metrics.top_k") to the line that
// first sets them. The TOML decoder knows positions but does not export them, and a
// user fixing a scenario wants the line. Keys of an array of tables are indexed
// twice: without the index, matching toml.Key.String ("policy.name", the first
// table's line), and with it ("policy[1].name", that table's own line).
type keyLines map[string]int

func indexKeys(data []byte) keyLines {
	lines := keyLines{}
	tables := map[string]int{} // arrays of tables: how many so far
	table, indexed := "", ""   // the current table, and its name with the array index
	add := func(key string, line int) {
		lines.add(strings.TrimPrefix(table+"."+key, "."), line)
		if indexed != table {
			lines.add(indexed+"."+key, line)
		}
	}
	for i, raw := range strings.Split(string(data), "\n") {
		line := strings.TrimSpace(stripComment(raw))
		switch {
		case line == "":
		case strings.HasPrefix(line, "[[") && strings.HasSuffix(line, "]]"):
			table = normalizeKey(line[2 : len(line)-2])
			indexed = fmt.Sprintf("%s[%d]", table, tables[table])
			tables[table]++
			lines.add(table, i+1)
			lines.add(indexed, i+1)
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			table = normalizeKey(line[1 : len(line)-1])
			indexed = table
			// A subtable of an array's table ([policy.limits]) belongs to its last element.
			for array, n := range tables {
				if strings.HasPrefix(table, array+".") {
					indexed = fmt.Sprintf("%s[%d]%s", array, n-1, strings.TrimPrefix(table, array))
				}
			}
			lines.add(table, i+1)
			lines.add(indexed, i+1)
		default:
			if k, _, ok := strings.Cut(line, "="); ok {
				add(normalizeKey(k), i+1)
			}
		}
	}
	return lines
}

func (k keyLines) add(key string, line int) {
	if _, ok := k[key]; !ok {
		k[key] = line
	}
}

// line finds key's line, or failing that its nearest enclosing table's; 0 if unknown.
func (k keyLines) line(key string) int {
	for key != "" {
		if n, ok := k[key]; ok {
			return n
		}
		i := strings.LastIndexByte(key, '.')
		if i < 0 {
			break
		}
		key = key[:i]
	}
	return 0
}

// normalizeKey turns `a . "b"` into a.b.
func normalizeKey(k string) string {
	parts := strings.Split(k, ".")
	for i, p := range parts {
		parts[i] = strings.Trim(strings.TrimSpace(p), `"'`)
	}
	return strings.Join(parts, ".")
}

// stripComment drops a trailing # comment that is not inside a string.
func stripComment(s string) string {
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0 && c == '\\' && quote == '"':
			i++
		case quote != 0 && c == quote:
			quote = 0
		case quote == 0 && (c == '"' || c == '\''):
			quote = c
		case quote == 0 && c == '#':
			return s[:i]
		}
	}
	return s
}

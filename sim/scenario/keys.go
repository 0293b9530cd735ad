package scenario

import (
	"strings"
)

// keyLines maps dotted key paths ("policy.params.k", "metrics.top_k") to the line that
// first sets them. The TOML decoder knows positions but does not export them, and a
// user fixing a scenario wants the line. Array-of-table indices are dropped, matching
// toml.Key.String.
type keyLines map[string]int

func indexKeys(data []byte) keyLines {
	lines := keyLines{}
	table := ""
	for i, raw := range strings.Split(string(data), "\n") {
		line := strings.TrimSpace(stripComment(raw))
		switch {
		case line == "":
		case strings.HasPrefix(line, "[[") && strings.HasSuffix(line, "]]"):
			table = normalizeKey(line[2 : len(line)-2])
			lines.add(table, i+1)
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			table = normalizeKey(line[1 : len(line)-1])
			lines.add(table, i+1)
		default:
			k, _, ok := strings.Cut(line, "=")
			if !ok {
				continue
			}
			key := normalizeKey(k)
			if table != "" {
				key = table + "." + key
			}
			lines.add(key, i+1)
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

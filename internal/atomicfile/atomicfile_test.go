package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.txt")
	if err := WriteBytes(path, []byte("first")); err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(path); err != nil || info.Mode().Perm() != 0o644 {
		t.Fatalf("stat: %v, %v", info, err)
	}
	// A failing writer leaves the old file and no temporary behind.
	boom := errors.New("boom")
	err := Write(path, func(w io.Writer) error {
		io.WriteString(w, "half")
		return boom
	})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), path) {
		t.Errorf("error %v: want boom, naming %s", err, path)
	}
	if data, _ := os.ReadFile(path); string(data) != "first" {
		t.Errorf("after a failed write the file holds %q", data)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("directory holds %d entries, want 1", len(entries))
	}
	if err := WriteBytes(filepath.Join(dir, "missing", "x"), nil); err == nil {
		t.Error("write into a missing directory succeeded")
	}
}

// TestWriteKeepsWhatRenameWouldLose checks that a write keeps an existing file's
// permissions and writes through symlinks, relative, absolute and dangling ones.
func TestWriteKeepsWhatRenameWouldLose(t *testing.T) {
	dir := t.TempDir()
	private := filepath.Join(dir, "private.txt")
	if err := os.WriteFile(private, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteBytes(private, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(private); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("after a write over a 0600 file: %v, %v; want mode 0600", info, err)
	}

	if err := os.Mkdir(filepath.Join(dir, "real"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ link, to, target string }{
		{"rel.txt", "real/a.txt", "real/a.txt"},
		{"abs.txt", filepath.Join(dir, "real/b.txt"), "real/b.txt"},
		{"chain.txt", "rel.txt", "real/a.txt"},
		{"dangling.txt", "real/c.txt", "real/c.txt"},
	} {
		link := filepath.Join(dir, tc.link)
		if err := os.Symlink(tc.to, link); err != nil {
			t.Fatal(err)
		}
		if tc.link != "dangling.txt" && tc.link != "chain.txt" {
			os.WriteFile(filepath.Join(dir, tc.target), []byte("old"), 0o644)
		}
		if err := WriteBytes(link, []byte(tc.link)); err != nil {
			t.Fatalf("%s: %v", tc.link, err)
		}
		if info, err := os.Lstat(link); err != nil || info.Mode()&os.ModeSymlink == 0 {
			t.Errorf("%s is no longer a symlink: %v, %v", tc.link, info, err)
		}
		if data, _ := os.ReadFile(filepath.Join(dir, tc.target)); string(data) != tc.link {
			t.Errorf("%s: its target %s holds %q, want %q", tc.link, tc.target, data, tc.link)
		}
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "real")); len(entries) != 3 {
		t.Errorf("real/ holds %d entries, want a.txt, b.txt, c.txt", len(entries))
	}

	if err := WriteBytes(filepath.Join(dir, "real"), nil); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("write over a directory: %v, want an error saying it is a directory", err)
	}
}

func TestCheckWritable(t *testing.T) {
	dir := t.TempDir()
	if err := CheckWritable(filepath.Join(dir, "new.txt")); err != nil {
		t.Errorf("a new file in a writable directory: %v", err)
	}
	missing := filepath.Join(dir, "missing", "x.json")
	if err := CheckWritable(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("a file in a missing directory: %v, want an error naming %s", err, missing)
	}
	if err := CheckWritable(dir); err == nil {
		t.Error("a directory passed as a file to write")
	}
	if err := CheckWritable(os.DevNull); err != nil {
		t.Errorf("%s: %v", os.DevNull, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("the check left %d files behind", len(entries))
	}
	if os.Geteuid() != 0 { // root writes into read-only directories
		ro := filepath.Join(dir, "ro")
		os.Mkdir(ro, 0o555)
		if err := CheckWritable(filepath.Join(ro, "x")); err == nil {
			t.Error("a file in a read-only directory passed")
		}
	}
}

// Package atomicfile writes files whole or not at all: through a temporary file in
// the target's directory (so that the rename cannot cross file systems), synced,
// then renamed over the target. A reader never sees half a file, and a failed write
// leaves the old file as it was.
//
// What the rename would destroy is kept: a symlink is written through to its
// target, an existing file keeps its permissions, and a target that is not a
// regular file (/dev/null, a FIFO, a terminal) is written directly, never replaced.
package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// TempPrefix starts the name of every temporary file this package makes, and
// kvtrace's: a leading dot hides them from ls and from globs like sample-*.
const TempPrefix = "."

// TempName is the pattern of the temporary file for path, for os.CreateTemp: a
// hidden name in path's directory that cannot match a glob of path's name.
func TempName(path string) string {
	return TempPrefix + filepath.Base(path) + ".tmp-*"
}

// maxLinks bounds symlink chains, as the kernel's ELOOP does.
const maxLinks = 40

// resolve follows symlinks from path to the file a write lands on. info is that
// file's, or nil when it does not exist yet.
func resolve(path string) (target string, info fs.FileInfo, err error) {
	// A device or pipe is opened through its links as they are, /dev/stdout's
	// /proc/self/fd/1 -> pipe:[N] included, which no path spells.
	if info, err := os.Stat(path); err == nil && !info.Mode().IsRegular() && !info.IsDir() {
		return path, info, nil
	}
	target = path
	for range maxLinks {
		info, err = os.Lstat(target)
		if errors.Is(err, fs.ErrNotExist) {
			return target, nil, nil
		}
		if err != nil {
			return "", nil, err
		}
		if info.Mode()&fs.ModeSymlink == 0 {
			return target, info, nil
		}
		link, err := os.Readlink(target)
		if err != nil {
			return "", nil, err
		}
		if !filepath.IsAbs(link) {
			link = filepath.Join(filepath.Dir(target), link)
		}
		target = link
	}
	return "", nil, errors.New("too many levels of symbolic links")
}

// Write replaces path with what write writes. A new file gets mode 0644; an
// existing one keeps its permissions. Errors name path.
func Write(path string, write func(io.Writer) error) error {
	if err := writeResolved(path, write); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func writeResolved(path string, write func(io.Writer) error) error {
	target, info, err := resolve(path)
	if err != nil {
		return err
	}
	mode := fs.FileMode(0o644)
	if info != nil {
		switch {
		case info.IsDir():
			return errors.New("is a directory")
		case !info.Mode().IsRegular():
			return writeDirect(target, write)
		}
		mode = info.Mode().Perm()
	}
	tmp, err := os.CreateTemp(filepath.Dir(target), TempName(target))
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	err = write(tmp)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), mode) // CreateTemp makes the file private
	}
	if err == nil {
		err = os.Rename(tmp.Name(), target)
	}
	return err
}

// writeDirect writes into a file that is not a regular one, such as a device or
// a FIFO, which a rename would replace.
func writeDirect(path string, write func(io.Writer) error) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	err = write(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// WriteBytes replaces path with data.
func WriteBytes(path string, data []byte) error {
	return Write(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// CheckWritable says, before any work starts, whether Write(path, ...) can
// succeed: path is not a directory, and the directory the file lands in exists
// and takes new files. It writes nothing that stays.
func CheckWritable(path string) error {
	target, info, err := resolve(path)
	if err == nil && info != nil && info.IsDir() {
		err = errors.New("is a directory")
	}
	if err == nil && (info == nil || info.Mode().IsRegular()) {
		var probe *os.File
		if probe, err = os.CreateTemp(filepath.Dir(target), TempName(target)); err == nil {
			probe.Close()
			err = os.Remove(probe.Name())
		}
	}
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	return nil
}

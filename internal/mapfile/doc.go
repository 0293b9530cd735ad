// Package mapfile maps files read-only into memory, so that traces and checkpoints are
// read a piece at a time without loading them whole. Where the platform has no mmap it
// reads the file instead.
package mapfile

package main

import (
	"time"

	"github.com/schollz/progressbar/v3"
)

// progressUsage documents the -progress flag of the commands that take it.
const progressUsage = "progress bar on stderr: auto (when stderr is a terminal), on, off"

// newProgress returns a func that shows done of total on a progress bar on stderr,
// made on first use, when mode asks for one; otherwise a func that does nothing.
func newProgress(e *env, mode, description string) func(done, total int) {
	if mode != "on" && (mode != "auto" || !e.stderrIsTTY) {
		return func(int, int) {}
	}
	var bar *progressbar.ProgressBar
	return func(done, total int) {
		if bar == nil {
			bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(e.stderr),
				progressbar.OptionSetDescription(description), progressbar.OptionShowCount(),
				progressbar.OptionSetPredictTime(true), progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionClearOnFinish())
		}
		bar.Set(done)
	}
}

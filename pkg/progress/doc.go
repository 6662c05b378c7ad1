// Package progress shows how long-running build steps advance: image
// pulls and initrd writes. On a terminal it keeps one live line per
// active task, redrawn in place a few times a second, and leaves a summary
// line behind when a task ends; anywhere else (a pipe, a log, CI) it
// writes only the summary lines, whole, with no escape sequences.
//
// A nil *Display and a nil *Task do nothing, so code that may or may not
// be watched needs no checks.
package progress

//go:build race

package initrd

// raceEnabled: the test binary runs under the race detector, whose shadow
// memory makes a process's peak RSS vary by ±10 MiB from run to run.
const raceEnabled = true

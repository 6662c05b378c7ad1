package progress

import (
	"fmt"
	"time"
)

// Bytes formats n in decimal units, as registries and docker report
// sizes: "512 B", "1.5 kB", "12.3 MB".
func Bytes(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTP"[exp])
}

// Rate formats n bytes over d as bytes per second; "" when d is too short
// to say anything.
func Rate(n int64, d time.Duration) string {
	if n <= 0 || d < time.Millisecond {
		return ""
	}
	return Bytes(int64(float64(n)/d.Seconds())) + "/s"
}

// Duration formats a task's length: "0.4s", "12.0s", "2m05s".
func Duration(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	d = d.Round(time.Second)
	return fmt.Sprintf("%dm%02ds", int(d/time.Minute), int(d%time.Minute/time.Second))
}

// truncate cuts s to at most width runes, so that a live line never wraps
// (a wrapped line would throw off the count of lines to redraw).
func truncate(s string, width int) string {
	if width <= 0 {
		return s
	}
	n := 0
	for i := range s {
		if n == width {
			return s[:i]
		}
		n++
	}
	return s
}

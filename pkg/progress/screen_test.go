package progress

import (
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// screen is a minimal terminal: it understands what the display writes
// (printable text, \n, \r, cursor up, clear to the end of the screen) and
// fails the test on any other escape, so a test can check what a person
// would see, not which bytes were sent.
type screen struct {
	t        *testing.T
	lines    [][]rune
	row, col int
}

func (s *screen) Write(p []byte) (int, error) {
	rs := []rune(string(p))
	for i := 0; i < len(rs); i++ {
		switch r := rs[i]; r {
		case '\n':
			s.row, s.col = s.row+1, 0
		case '\r':
			s.col = 0
		case 0x1b:
			j := i + 2
			if j > len(rs) || rs[i+1] != '[' {
				s.t.Fatalf("bad escape in %q", p)
			}
			for j < len(rs) && rs[j] >= '0' && rs[j] <= '9' {
				j++
			}
			if j == len(rs) {
				s.t.Fatalf("unfinished escape in %q", p)
			}
			n := 1
			if j > i+2 {
				n, _ = strconv.Atoi(string(rs[i+2 : j]))
			}
			switch rs[j] {
			case 'A':
				s.row = max(s.row-n, 0)
			case 'J':
				if s.row < len(s.lines) {
					s.lines[s.row] = s.lines[s.row][:min(s.col, len(s.lines[s.row]))]
					s.lines = s.lines[:s.row+1]
				}
			default:
				s.t.Fatalf("unexpected escape %q", string(rs[i:j+1]))
			}
			i = j
		default:
			for len(s.lines) <= s.row {
				s.lines = append(s.lines, nil)
			}
			line := s.lines[s.row]
			for len(line) <= s.col {
				line = append(line, ' ')
			}
			line[s.col] = r
			s.lines[s.row] = line
			s.col++
		}
	}
	return len(p), nil
}

// text is the screen's lines, trailing empty ones dropped.
func (s *screen) text() string {
	var out []string
	for _, l := range s.lines {
		out = append(out, strings.TrimRight(string(l), " "))
	}
	for len(out) > 0 && out[len(out)-1] == "" {
		out = out[:len(out)-1]
	}
	return strings.Join(out, "\n")
}

// clock is a fake clock that only moves when told to.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func fixedWidth(n int) func() int { return func() int { return n } }

package session

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"
	"time"
)

// TestArrival: a kernel receive timestamp becomes engine time that keeps
// now's monotonic reading; missing or implausible stamps count as now.
func TestArrival(t *testing.T) {
	now := time.Now()
	wall := now.UnixNano()
	for _, c := range []struct {
		name string
		ts   int64
		want time.Duration // arrival - now
	}{
		{"none", 0, 0},
		{"waited 5 ms", wall - 5e6, -5 * time.Millisecond},
		{"in the future", wall + 1e9, 0},
		{"a minute ago: a clock step", wall - 60e9, 0},
	} {
		var rt time.Time
		if c.ts != 0 {
			rt = time.Unix(0, c.ts)
		}
		got := arrival(now, rt)
		if d := got.Sub(now); d < c.want-time.Microsecond || d > c.want+time.Microsecond {
			t.Errorf("%s: arrival - now = %v, want %v", c.name, d, c.want)
		}
		if got.Round(0) == got {
			t.Errorf("%s: arrival lost the monotonic clock reading", c.name)
		}
	}
}

// TestStreamReadGaps: a stream's Read reports each gap in its place, with
// the bytes lost, between the data before and after it.
func TestStreamReadGaps(t *testing.T) {
	o := newObject(nil, ObjectInfo{Kind: KindStream})
	o.streamData([]byte("abc"))
	o.streamGap(5)
	o.streamData([]byte("de"))
	o.streamGap(7)
	close(o.done)
	var got []string
	buf := make([]byte, 10)
	for range 10 {
		n, err := o.Read(buf)
		var ge *GapError
		switch {
		case errors.As(err, &ge):
			if !errors.Is(err, ErrDataLost) {
				t.Fatalf("%v does not match ErrDataLost", err)
			}
			got = append(got, fmt.Sprintf("gap %d", ge.Lost))
		case err == io.EOF:
			got = append(got, "EOF")
		case err != nil:
			t.Fatal(err)
		default:
			got = append(got, string(buf[:n]))
		}
		if err == io.EOF {
			break
		}
	}
	if want := []string{"abc", "gap 5", "de", "gap 7", "EOF"}; !slices.Equal(got, want) {
		t.Fatalf("reads %q, want %q", got, want)
	}
}

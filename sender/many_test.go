package sender

import (
	"errors"
	"testing"
	"time"

	"github.com/shoalnet/shoal/framing"
)

// BenchmarkManySmallObjects sends b.N objects of 100 bytes through a
// sender whose cache holds 32,768 (filecast's tree of small files): the
// cost per object must not grow with the objects cached, as it did when
// the next object to send was found by scanning the cache on every
// packet.
func BenchmarkManySmallObjects(b *testing.B) {
	s, err := New(Config{NodeID: 1, Rate: 1e12, CacheObjects: 32768}, t0)
	if err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, 100)
	var out framing.Outbox
	now := t0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; {
		_, err := s.SendData(payload, nil)
		switch {
		case errors.Is(err, ErrCacheFull):
			out.Reset()
			now = now.Add(time.Millisecond)
			s.Poll(now, &out)
			continue
		case err != nil:
			b.Fatal(err)
		}
		i++
		if i%64 == 0 {
			out.Reset()
			now = now.Add(time.Microsecond)
			s.Poll(now, &out)
		}
	}
}

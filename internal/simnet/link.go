package simnet

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// LinkConfig describes the impairments of one direction of a node's
// attachment to the network. The zero value is a perfect link: no delay, no
// loss, unlimited rate.
type LinkConfig struct {
	// Delay is the fixed one-way propagation delay.
	Delay time.Duration
	// Jitter is the upper bound of a uniformly random extra delay drawn per
	// packet; a jitter larger than the spacing of packets reorders them.
	Jitter time.Duration
	// Duplicate is the probability that a packet that crossed the link is
	// delivered twice. The copy draws its own jitter, so it may arrive
	// before the original.
	Duplicate float64
	// Loss is the random loss process of the link; nil loses nothing.
	Loss LossModel
	// Rate, in bits per second of payload, makes the link a bottleneck:
	// packets are serialized one after another at this rate, so a burst
	// waits in a queue. Zero means unlimited, and then QueueBytes is
	// ignored.
	Rate int64
	// QueueBytes bounds the payload bytes waiting at the bottleneck,
	// counting the packet being serialized; a packet that would exceed it
	// is dropped (drop-tail). The queueing delay is therefore at most
	// QueueBytes*8/Rate. Zero means 1 GiB, which is as good as unlimited.
	QueueBytes int
}

// maxQueueBytes keeps the queue's work, counted in bits times 1e9, inside a
// uint64.
const maxQueueBytes = 1 << 30

func (c LinkConfig) check(where string) {
	switch {
	case c.Delay < 0:
		panic(fmt.Sprintf("simnet: %s: negative Delay %v", where, c.Delay))
	case c.Jitter < 0 || c.Jitter == math.MaxInt64:
		panic(fmt.Sprintf("simnet: %s: Jitter %v outside [0, MaxInt64)", where, c.Jitter))
	case !(c.Duplicate >= 0 && c.Duplicate <= 1):
		panic(fmt.Sprintf("simnet: %s: Duplicate = %v is not a probability", where, c.Duplicate))
	case c.Rate < 0:
		panic(fmt.Sprintf("simnet: %s: negative Rate %d", where, c.Rate))
	case c.QueueBytes < 0 || c.QueueBytes > maxQueueBytes:
		panic(fmt.Sprintf("simnet: %s: QueueBytes %d outside [0, 1 GiB]", where, c.QueueBytes))
	}
}

// link is the state of one direction of one node's attachment.
type link struct {
	delay  int64
	jitter int64
	dup    float64
	loss   Loss
	rng    *rand.Rand // jitter and duplication; the loss process has its own

	// The bottleneck is a FIFO serializer. Its backlog is kept as work: bits
	// times 1e9, which drains at exactly rate units per nanosecond, so
	// packets' transmission times never accumulate rounding error and the
	// byte limit is enforced exactly.
	rate     uint64
	maxWork  uint64
	work     uint64
	workedAt int64 // when work was last brought up to date
	lastIn   int64 // latest time a packet entered; keeps the link FIFO

	stats LinkStats
}

func newLink(c LinkConfig, lossRNG, rng *rand.Rand) link {
	l := link{
		delay:  int64(c.Delay),
		jitter: int64(c.Jitter),
		dup:    c.Duplicate,
		rng:    rng,
		rate:   uint64(c.Rate),
	}
	if c.Loss != nil {
		l.loss = c.Loss.NewLoss(lossRNG)
	}
	q := c.QueueBytes
	if q == 0 {
		q = maxQueueBytes
	}
	l.maxWork = uint64(q) * 8e9
	return l
}

// cross takes a packet of size bytes entering the link at t and returns the
// times its copies come out of the far end: n is 0 (dropped), 1, or 2
// (duplicated). start converts t for a Loss.
func (l *link) cross(t int64, size int, start time.Time) (a, b int64, n int) {
	if t < l.lastIn {
		t = l.lastIn
	}
	l.lastIn = t
	l.stats.Sent++
	l.stats.SentBytes += uint64(size)

	out := t
	if l.rate != 0 {
		if dt := uint64(t - l.workedAt); dt >= (l.work+l.rate-1)/l.rate {
			l.work = 0
		} else {
			l.work -= dt * l.rate
		}
		l.workedAt = t
		w := uint64(size) * 8e9
		if l.work+w > l.maxWork {
			l.stats.QueueDropped++
			return 0, 0, 0
		}
		l.work += w
		out = satAdd(t, int64((l.work+l.rate-1)/l.rate))
	}
	if l.loss != nil && l.loss.Lost(start.Add(time.Duration(out)), size) {
		l.stats.Lost++
		return 0, 0, 0
	}
	out = satAdd(out, l.delay)
	a = out
	if l.jitter > 0 {
		a = satAdd(a, l.rng.Int64N(l.jitter+1))
	}
	if l.dup > 0 && l.rng.Float64() < l.dup {
		l.stats.Duplicated++
		b = out
		if l.jitter > 0 {
			b = satAdd(b, l.rng.Int64N(l.jitter+1))
		}
		return a, b, 2
	}
	return a, 0, 1
}

// satAdd adds two non-negative times, stopping at the end of time rather
// than wrapping around into the past, for clocks pushed to the far future
// by DeliverUntil(far future) or links slower than any real one.
func satAdd(a, b int64) int64 {
	if s := a + b; s >= a {
		return s
	}
	return math.MaxInt64
}

// Stream labels for seeding, so a link's loss draws do not depend on whether
// it also has jitter or duplication configured.
const (
	streamLoss = 1
	streamLink = 2
)

// Directions for seeding.
const (
	dirUp   = 1
	dirDown = 2
)

// linkRNG returns the random stream stream of direction dir of the node
// called name. Keying on the name rather than the NodeID is what keeps the
// other links' draws unchanged when a node is added.
func linkRNG(seed uint64, name string, dir, stream uint64) *rand.Rand {
	h := uint64(14695981039346656037) // FNV-1a
	for i := 0; i < len(name); i++ {
		h ^= uint64(name[i])
		h *= 1099511628211
	}
	return rand.New(rand.NewPCG(mix(seed^mix(h)), mix(h^dir<<32^stream)))
}

// mix is the SplitMix64 finalizer: it spreads nearby inputs (seeds 1, 2, 3)
// to unrelated outputs.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

package session

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/shoalnet/shoal/framing"
	"github.com/shoalnet/shoal/secure"
)

// secState is the session's packet security (Config.Security): the seal
// on the way out, the check on the way in, and what was refused.
type secState struct {
	sealer *secure.Sealer // nil without Config.Security
	opener *secure.Opener
	box    framing.Outbox // sealed copies of the engines' packets

	sealErrors uint64
	// foreign counts packets carrying EXT_AUTH that a session without
	// keys dropped: someone runs this group with keys.
	foreign uint64
	warned  map[netip.Addr]time.Time // when each source was last logged

	// SecurityRejected events: per source, when it was last reported and
	// what it sent since; in all, how many were published this window.
	reported    map[netip.AddrPort]*secReport
	window      time.Time
	windowCount int
}

type secReport struct {
	at    time.Time
	count uint64 // refusals since the last event, the one reported included
}

// SecurityRejected: received packets were refused by Config.Security (or
// carried EXT_AUTH and the session has none). Events are rate-limited so
// that a flood cannot fill the event queue: one per source address and
// secEventEvery, and at most maxSecEvents a second in all. Count says how
// many packets From had refused since its previous event, so the counts
// add up to what reached events; Stats().Security counts every refusal.
type SecurityRejected struct {
	From   netip.AddrPort
	Node   uint32 // the source node id the packet claims, which may be forged
	Reason error  // wraps one of the secure.Err* errors
	Count  uint64
}

func (SecurityRejected) event() {}

const (
	secEventEvery = time.Second
	maxSecEvents  = 16
	maxReported   = 1024 // sources tracked for events; then forgotten at once
)

// errNoKey is the reason given for EXT_AUTH packets a session without keys
// refuses.
var errNoKey = fmt.Errorf("%w: authenticated packet (EXT_AUTH) and this session has no key", secure.ErrMalformed)

// warnEvery bounds how often one source's refused packets are logged.
const warnEvery = 10 * time.Second

// initSecurity sets up Config.Security. Called by New before the engines
// exist; with signatures the default segment size shrinks so that a full
// packet still fits a 1500-byte MTU.
func (s *Session) initSecurity() error {
	s.sec = &secState{warned: map[netip.Addr]time.Time{}}
	c := s.cfg.Security
	if c == nil {
		return nil
	}
	var err error
	if s.sec.sealer, err = secure.NewSealer(*c, time.Now()); err != nil {
		return fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if s.sec.opener, err = secure.NewOpener(*c); err != nil {
		return fmt.Errorf("%w: %v", ErrConfig, err)
	}
	// The pacer charges the most EXT_AUTH adds (a batch signature's path
	// may be shorter), so the wire never carries more than Sender.Rate.
	s.cfg.Sender.PacketOverhead = c.Overhead()
	if s.cfg.Sender.SegmentSize == 0 && c.Overhead() > 32 {
		// 32 bytes more fit a full default packet in 1500 bytes.
		s.cfg.Sender.SegmentSize = 1400 - (c.Overhead() - 32)
	}
	return nil
}

// sealOut replaces the polled packets with sealed copies. Called by poll
// with s.mu held; without Config.Security it does nothing, so the packets
// go out exactly as the engines built them.
func (s *Session) sealOut(now time.Time) {
	if s.sec == nil || s.sec.sealer == nil || s.out.Len() == 0 {
		return
	}
	s.sec.box.Reset()
	if n := s.sec.sealer.SealAll(&s.sec.box, &s.out, now); n > 0 {
		s.sec.sealErrors += uint64(n)
		s.log.Warn("packets not sent: cannot seal them", "count", n)
	}
	s.out, s.sec.box = s.sec.box, s.out
}

// openIn checks a received packet and returns it as its sender's engine
// built it, or nil if it is to be dropped. Called by handle with s.mu held,
// before the engines see anything of the packet.
func (s *Session) openIn(now time.Time, from netip.AddrPort, b []byte) []byte {
	if s.sec == nil {
		return b // a Session not made by New (tests)
	}
	if s.sec.opener == nil {
		if !hasAuth(b) {
			return b
		}
		s.sec.foreign++
		s.warn(now, from, "packets from %v are authenticated (EXT_AUTH) and this session has no key", nil)
		s.rejected(now, from, claimedNode(b), errNoKey)
		return nil
	}
	node := claimedNode(b)
	out, err := s.sec.opener.Open(b, now)
	if err != nil {
		s.warn(now, from, "packets from %v fail authentication: %v", err)
		s.rejected(now, from, node, err)
		return nil
	}
	return out
}

func claimedNode(b []byte) uint32 {
	if len(b) < 8 {
		return 0
	}
	return binary.BigEndian.Uint32(b[4:])
}

// rejected counts a refused packet towards its source's next
// SecurityRejected event and publishes one if the rate limits allow.
func (s *Session) rejected(now time.Time, from netip.AddrPort, node uint32, why error) {
	r := s.sec.reported[from]
	if r == nil {
		if s.sec.reported == nil || len(s.sec.reported) >= maxReported {
			s.sec.reported = map[netip.AddrPort]*secReport{}
		}
		r = &secReport{}
		s.sec.reported[from] = r
	}
	r.count++
	if !r.at.IsZero() && now.Sub(r.at) < secEventEvery {
		return
	}
	if now.Sub(s.sec.window) >= time.Second {
		s.sec.window, s.sec.windowCount = now, 0
	}
	if s.sec.windowCount >= maxSecEvents {
		return
	}
	s.sec.windowCount++
	s.publish(SecurityRejected{From: from, Node: node, Reason: why, Count: r.count})
	r.at, r.count = now, 0
}

// warn logs a refused packet's cause, at most once per warnEvery per
// source address so that a flood cannot flood the log.
func (s *Session) warn(now time.Time, from netip.AddrPort, format string, err error) {
	a := from.Addr()
	if t, ok := s.sec.warned[a]; ok && now.Sub(t) < warnEvery {
		return
	}
	if len(s.sec.warned) >= 1024 {
		clear(s.sec.warned)
	}
	s.sec.warned[a] = now
	msg := fmt.Sprintf(format, a, reason(err))
	if err == nil {
		msg = fmt.Sprintf(format, a)
	}
	s.log.Warn(msg)
}

// reason turns an Open error into advice.
func reason(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, secure.ErrTag), errors.Is(err, secure.ErrKey), errors.Is(err, secure.ErrMalformed):
		return "wrong or missing key (" + err.Error() + ")"
	case errors.Is(err, secure.ErrStale):
		return "clocks differ by more than the allowed skew, or a replay (" + err.Error() + ")"
	}
	return err.Error()
}

// hasAuth reports whether b carries EXT_AUTH (cheaply: a packet without
// header extensions has none).
func hasAuth(b []byte) bool {
	start, hdrLen, err := framing.ExtensionArea(b)
	if err != nil || start == hdrLen {
		return false
	}
	_, ok := framing.Extensions(b[start:hdrLen]).Find(framing.ExtAuth)
	return ok
}

// SecurityStats says what Config.Security accepted and, by cause, what it
// refused. Without Config.Security only Malformed counts: received packets
// that carried EXT_AUTH, dropped because this session has no key.
func (s *Session) SecurityStats() secure.Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.securityStats()
}

// securityStats is SecurityStats with s.mu held (Stats uses it).
func (s *Session) securityStats() secure.Stats {
	if s.sec == nil {
		return secure.Stats{}
	}
	if s.sec.opener == nil {
		return secure.Stats{Malformed: s.sec.foreign}
	}
	return s.sec.opener.Stats()
}

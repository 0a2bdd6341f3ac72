package main

import (
	"log/slog"
	"net/netip"
	"time"

	"github.com/shoalnet/shoal/session"
)

// debugTracer is the session tracer behind --log-level debug: it logs
// every NACK, repair burst, GRTT and rate change (not every packet, which
// would drown them). At other levels it returns nil: no tracing at all.
func debugTracer(level string, log *slog.Logger) *session.Tracer {
	if level != "debug" {
		return nil
	}
	return &session.Tracer{
		NackSent: func(to netip.AddrPort, size int) {
			log.Debug("NACK sent", "to", to, "bytes", size)
		},
		NackReceived: func(from netip.AddrPort, node session.NodeID) {
			log.Debug("NACK received", "from", from, "node", node)
		},
		RepairsSent: func(n int) {
			log.Debug("repairs sent", "symbols", n)
		},
		GRTTChanged: func(grtt time.Duration) {
			log.Debug("GRTT changed", "grtt", grtt)
		},
		RateChanged: func(rate float64) {
			log.Debug("rate changed", "mbit/s", rate*8/1e6)
		},
	}
}

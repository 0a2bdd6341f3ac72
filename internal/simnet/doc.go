// Package simnet is Shoal's simulated multicast network. The sender and
// receiver engines are sans-I/O: they take packets and the current time and
// hand back packets to send and the time they next want to be woken. Tests
// and the bench sim command connect one sender and up to a thousand
// receivers through a Network to see how the protocol copes with loss,
// reordering, duplication and congestion, without sockets, goroutines or a
// wall clock.
//
// # Model
//
// A Network holds nodes (named, numbered by [NodeID] in the order they are
// added, each with a unicast address) and multicast groups (any multicast
// [netip.AddrPort]; joining creates them). A packet sent by a node crosses
// the node's uplink once, reaches a switch that copies it to every member of
// the group (or to the one unicast destination), and each copy crosses the
// receiver's downlink. Loss on an uplink is therefore seen by every receiver
// alike (shared upstream loss), while loss on downlinks is independent. A
// node does not get its own multicast back unless [NodeConfig.Loopback] is
// set, in which case the copy is delivered locally at once, as a kernel
// would; unicast to one's own address is delivered locally the same way.
//
// Each link, in order, queues the packet behind a bottleneck of
// [LinkConfig.Rate] (drop-tail at [LinkConfig.QueueBytes]), loses it
// according to its [LossModel], delays it by [LinkConfig.Delay] plus a
// uniform [LinkConfig.Jitter] (so packets can overtake each other), and with
// probability [LinkConfig.Duplicate] delivers a second copy with its own
// jitter. Every link draws from its own random streams, derived from
// [Config.Seed] and the node's name, so the same seed and the same calls give
// the same result, and adding a node does not change the random draws of the
// other links.
//
// Time is virtual: a [time.Time] that moves only when the caller says so.
// Internally it is nanoseconds since [Config.Start], and events are ordered
// by time and then by the order in which they were scheduled, so ties are
// broken deterministically.
//
// # Driving a simulation
//
// The simplest way is [Run]: wrap each engine in an [Endpoint] (Handle feeds
// it a packet, Poll fires its timers; both return the next wake-up time, and
// the endpoint sends with [Network.Send]) and let Run interleave deliveries
// and wake-ups until nothing is left to do, a virtual deadline passes, or a
// Done condition holds:
//
//	n := simnet.New(simnet.Config{Seed: 1})
//	lossy := simnet.LinkConfig{Delay: 10 * time.Millisecond, Loss: simnet.Bernoulli{P: 0.01}}
//	snd := n.AddNode("sender", simnet.NodeConfig{})
//	eps := make([]simnet.Endpoint, 0, 1+receivers)
//	eps = append(eps, newSenderEndpoint(n, snd, group))
//	for i := range receivers {
//		id := n.AddNode(fmt.Sprint("rx", i), simnet.NodeConfig{Down: lossy})
//		n.Join(id, group)
//		eps = append(eps, newReceiverEndpoint(n, id, group))
//	}
//	res := simnet.Run(n, eps, simnet.Limits{Until: n.Now().Add(time.Minute), Done: allComplete})
//
// where eps[i] is the endpoint of NodeID i. A test that wants full control
// drives the network itself: Send packets (each stamped with the time it
// leaves the node), ask [Network.Next] when the network next needs
// attention, and call [Network.DeliverUntil] to receive, in time order,
// every packet that has arrived by a given time. Packets may be sent in the
// future (a test can queue 100,000 packets at 1 ms spacing and then deliver
// them all), but never in the past: a send stamped before [Network.Now] is
// treated as sent at Now.
//
// A payload passed to Send is copied once into a pooled buffer shared by all
// of its deliveries, and the payload a callback sees is valid only until it
// returns. In steady state neither sending nor delivering allocates.
//
// A Network is not safe for concurrent use; a simulation is one goroutine.
package simnet

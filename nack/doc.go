// Package nack holds the mechanisms of NORM's NACK-based repair (RFC 5740
// §5.3 and §5.4, with the timers of RFC 5401): what a receiver has lost,
// what it asks for, when it keeps quiet, and how a sender merges what many
// receivers asked for. It sits between package framing, whose repair
// request codec it uses for every byte on the wire, and the sender and
// receiver engines, which own the timers, the randomness and the sockets
// and call in here; it keeps no clocks and starts no goroutines.
//
// The receiver side:
//
//   - Object and Pool track, per object, the blocks that are complete and
//     the symbols that arrived of each partially received block, in
//     fixed-size bitmasks (Bitmask) taken from a preallocated pool.
//   - BackoffDelay draws the random NACK back-off, NackHoldoff says how long
//     to wait before NACKing again.
//   - Suppressor merges overheard NACKs and the sender's CMD(REPAIR_ADV)
//     and says whether they already cover the receiver's needs.
//   - Builder writes the NACK content in its most compact form, within a
//     size limit.
//
// The sender side: AggregationWindow says how long to collect NACKs, and
// Aggregator merges them into a repair plan per object and block.
// GroupCounter counts the receivers a sender hears and GroupBackoff turns
// that count into the back-off factor to advertise, so that a small group
// is not timed like a large one.
//
// Interoperating with the reference implementation (NRL NORM) shapes two
// choices. A receiver asks for the parity ids it needs rather than sending
// an erasure count, since a reference sender reads the number of ids
// requested in a block as the count and does not understand the ERASURES
// form (Builder.Erasures turns it on between Shoal peers). And requests are
// written in ascending order, run by run, as the reference writes them.
//
// Nothing here allocates per packet once its tables exist. Types are not
// safe for concurrent use: each belongs to one engine.
package nack

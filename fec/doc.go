// Package fec is Shoal's forward error correction layer: it decides how a
// NORM object is cut into source blocks and segments (RFC 5740 §5.1.1, the
// RFC 5052 blocking algorithm) and computes and uses the Reed-Solomon parity
// of FEC Encoding ID 5 (RFC 5510, GF(2^8)) exactly as the reference NORM
// implementation does, so Shoal and libnorm peers can repair each other's
// losses.
//
// It sits between package framing, which reads and writes the FEC payload id
// and EXT_FTI fields on the wire, and the sender and receiver protocol
// engines, which use a [Partition] to map (source block number, encoding
// symbol id) to object bytes and a [Codec] to make parity and to rebuild lost
// segments. The package knows nothing about messages or sessions; its types
// are safe for concurrent use.
package fec

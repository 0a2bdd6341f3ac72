package receiver

import "io"

// BlockSink is a destination (see Config.Sink) that takes a complete
// block's buffer instead of having the block's data copied out of it: a
// receiver that writes on another goroutine saves a copy of every byte. The
// receiver calls WriteBlock, instead of WriteAt, for each complete block
// whose symbols all lie in its own buffer (always, unless
// Config.SharedPayloads).
type BlockSink interface {
	io.WriterAt
	// WriteBlock writes each piece's B at its Off. Every B is a slice of
	// buf. The sink takes buf, error or not: the receiver does not touch
	// it again, and the sink may write from it after WriteBlock returns.
	// pieces is the receiver's and must not be kept. spare is a buffer for
	// the receiver to use in buf's place: of any length and capacity, or
	// nil (it then allocates as blocks need room).
	WriteBlock(buf []byte, pieces []Piece) (spare []byte, err error)
}

// Piece is part of a block's data and where in the object it goes.
type Piece struct {
	Off int64
	B   []byte
}

package framing

// ObjectKind is the type of a NORM object, shared by the sender, receiver
// and session packages (each names it Kind).
type ObjectKind uint8

// Object kinds.
const (
	// ObjectData is NORM_OBJECT_DATA: bytes held in memory.
	ObjectData ObjectKind = iota + 1
	// ObjectFile is NORM_OBJECT_FILE: a file, whose NORM_INFO
	// conventionally names it.
	ObjectFile
	// ObjectStream is NORM_OBJECT_STREAM: an unbounded byte stream with
	// message boundaries.
	ObjectStream
)

func (k ObjectKind) String() string {
	switch k {
	case ObjectData:
		return "data"
	case ObjectFile:
		return "file"
	case ObjectStream:
		return "stream"
	}
	return "unknown"
}

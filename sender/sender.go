package sender

import (
	"fmt"
	"io"
	"math/bits"
	"slices"
	"time"

	"github.com/shoalnet/shoal/congestion"
	"github.com/shoalnet/shoal/fec"
	"github.com/shoalnet/shoal/framing"
	"github.com/shoalnet/shoal/nack"
)

// Kind is the NORM object type, one type with session.Kind.
type Kind = framing.ObjectKind

// Object kinds.
const (
	KindData = framing.ObjectData // bytes held in memory (NORM_OBJECT_DATA)
	KindFile = framing.ObjectFile // read through io.ReaderAt (NORM_OBJECT_FILE)
)

// txObject is one object in the transmit cache.
type txObject struct {
	id     uint16
	kind   Kind
	size   uint64
	part   fec.Partition
	info   []byte
	data   []byte
	file   io.ReaderAt
	fti    framing.Extensions // EXT_FTI, encoded once per object
	infoX  framing.Extensions // NORM_INFO's extensions: EXT_FTI plus the application's
	blocks int

	// Transmission of new data: the next block and symbol id (source ids
	// 0..k′-1, then auto parity ids k′..k′+AutoParity-1).
	nextBlock int
	nextSym   int
	infoSent  bool
	sent      bool // all new data (and auto parity) sent

	// parityUsed[b] counts parity symbols of block b sent so far, so that
	// repairs send fresh parity first.
	parityUsed []uint8
	// repairAt[b] and repairN[b]: when the last repair cycle sent fresh
	// parity for block b, and how many. Allocated on the first repair.
	repairAt []time.Time
	repairN  []uint8
	failed   error
	stream   *txStream // KindStream only
	lastTx   time.Time // when a packet of it last went out

	// Marks (see repairQueue) of this object's repair jobs still waiting,
	// so that requests for the same repair merge, one set per queue (the
	// repair queue and the bulk queue, see budget.go).
	marks [2]jobMarks
}

// jobMarks are the marks of one object's waiting jobs in one queue: its
// NORM_INFO, the whole object, a block range, and per block (by slot) its
// symbols.
type jobMarks struct {
	info, obj, blk uint64
	seg            []uint64
}

// repairJob is one entry of the repair queue, built from an aggregation
// window's plan.
type repairJob struct {
	obj       uint16
	level     framing.RepairFlags
	block     uint32
	lastBlock uint32
	fec       bool      // repair with fresh parity (segment level)
	parity    int       // fresh parity symbols still to send (segment level)
	want      [4]uint64 // symbol ids receivers asked for (segment level)
	next      int       // cursor: next symbol id / next block to send
	done      bool
	started   bool // sending began: requests no longer merge into it
	// A bulk pass over blocks sends each block's parity first (see
	// parityPass): parity block and symbol cursor.
	parityFirst bool
	pblock      uint32
	pnext       int
	turn        bool // the parity is out: the source may go behind the next job (see sendRepair)
}

func (j *repairJob) setWant(i int) { j.want[i>>6] |= 1 << (i & 63) }

// nextWant returns the first requested symbol id >= from, or -1.
func (j *repairJob) nextWant(from int) int {
	for from >= 0 && from < 256 {
		if w := j.want[from>>6] >> (from & 63); w != 0 {
			return from + bits.TrailingZeros64(w)
		}
		from = (from | 63) + 1
	}
	return -1
}

// Sender is the sender engine. It is not safe for concurrent use: package
// session serializes calls.
type Sender struct {
	cfg    Config
	inst   uint16
	pacer  *congestion.Pacer
	codec  *fec.Codec
	epoch  time.Time
	closed bool

	seq     uint16
	nextID  uint16
	objs    []*txObject // transmit cache, oldest first, ids consecutive
	cacheSz int64

	// GRTT estimation (RFC 5740 §5.1.3): grow at once, shrink slowly.
	grtt       time.Duration
	grttPeak   time.Duration
	grttSet    bool      // the estimate has been measured at least once
	grttShrunk time.Time // last time the estimate was allowed to shrink
	nextProbe  time.Time
	lastProbe  time.Time
	firstProbe time.Time
	ccSeq      uint16

	// The rate set by Config.Rate, SetRate or congestion control, and the
	// lower limit that receivers' pace reports impose (0: none; see
	// pace.go).
	baseRate   float64
	paceLimit  float64
	paceNode   uint32
	paceHeard  time.Time // the last report of a receiver falling behind
	paceHold   time.Time // no further cut before this
	paceGrowAt time.Time

	// NORM-CC (nil at a fixed rate).
	cc        *congestion.Controller
	ccNodes   []congestion.Node
	ccContent []byte

	// Repair (RFC 5740 §5.4): NACKs are aggregated for GRTT·(backoff+1),
	// then answered ahead of new data.
	agg        *nack.Aggregator
	bulkAgg    *nack.Aggregator    // the window's requests beyond their nodes' budgets (see budget.go)
	bulkUsed   bool                // bulkAgg holds this window's
	budget     []nodeBudget        // per-node repair budgets (see budget.go)
	trimBuf    []byte              // NACK content cut to a node's budget
	trimRefs   []framing.SymbolRef // scratch for trimBuf
	aggBase    uint16              // the oldest object id when the window opened
	group      nack.GroupCounter   // receivers heard, for adaptive timers
	adaptBO    bool                // Backoff follows the group heard
	backoff    int                 // back-off factor advertised now
	aggStart   time.Time
	aggEnd     time.Time
	cycleStart time.Time // when the current repair cycle's plan was made
	repairLoss float64   // receivers' loss per symbol, as their largest counts show (see repairMargin)
	lossTable  lossTable
	squelch    bool
	squelchID  [64]uint16
	squelchN   int
	rq         repairQueue
	bq         repairQueue // bulk repairs: sent when nothing else is (see budget.go)
	// Repair and new data packets sent since the repair queue was last
	// empty (see yieldToData).
	repairRun, dataRun int

	// Flush and positive acknowledgement.
	flushCount int
	nextFlush  time.Time
	wm         *watermark
	nodes      []uint32    // acking nodes, in the order configured or heard
	nodeSet    []uint32    // the same, sorted, to look nodes up
	nodeSeen   []time.Time // when each of nodeSet was last heard
	listed     []uint32    // Config.AckingNodes, sorted: never evicted
	nodeSweep  time.Time   // no eviction sweep before this (see evictNodes)
	flowSweep  time.Time
	flow       []flowNode     // receivers stream flow control waits for
	flowIndex  map[uint32]int // index into flow by node id
	flowDue    bool           // a flow-control watermark request is due
	objDue     bool           // an object flow-control request is due
	objAsked   time.Time      // when the last one went out
	objBlocked time.Time      // since when queueing waits for confirmations, zero if not
	unsentFrom int            // objs[:unsentFrom] are all sent (see advanceUnsent)
	streams    int            // stream objects in objs
	flowObj    uint16         // the stream flow's acked positions refer to
	flowSet    bool
	rxDelay    time.Duration // the longest socket wait receivers reported lately
	rxDelayAt  time.Time
	now        time.Time // the time of the current Poll or HandlePacket
	ackedObj   uint16    // the newest object every acking node confirmed
	acked      bool      // ackedObj is set

	// Parity cache for one block at a time.
	pcObj     *txObject
	pcBlock   int
	pcValid   bool
	srcBufs   [][]byte
	parBufs   [][]byte
	fileBuf   []byte // one block of a file object (see fileBlock)
	fbObj     *txObject
	fbBlock   int
	fbValid   bool
	streamBuf []byte
	scratch   framing.Data
	cmd       framing.Cmd
	rx        framing.Message

	cmds        [][]byte // application commands waiting to go
	fields      framing.SenderFields
	fieldsFor   time.Duration
	fieldsStale bool

	events []Event
	stats  Stats
	// work counts loop steps of repair planning and sending, so that tests
	// can check the work per call is bounded by state, never by a number
	// in a packet.
	work uint64
}

type watermark struct {
	acked   int // nodes that acknowledged
	obj     uint16
	ref     framing.SymbolRef
	pending map[uint32]bool
	tries   int
	next    time.Time
}

// New returns a Sender started at now.
func New(cfg Config, now time.Time) (*Sender, error) {
	adaptBO := cfg.AdaptiveBackoff && cfg.Backoff >= 0
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	s := &Sender{
		cfg:     cfg,
		inst:    cfg.InstanceID,
		pacer:   congestion.NewPacer(cfg.Rate, burstFor(cfg, cfg.Rate), cfg.SegmentSize+64+cfg.PacketOverhead),
		epoch:   now,
		grtt:    cfg.GRTT,
		agg:     nack.NewAggregator(1024, fec.MaxSymbols),
		bulkAgg: nack.NewAggregator(1024, fec.MaxSymbols),
		budget:  make([]nodeBudget, 0, budgetNodes),
		trimBuf: make([]byte, 0, cfg.SegmentSize+64), trimRefs: make([]framing.SymbolRef, 0, 64),

		adaptBO: adaptBO, backoff: cfg.Backoff,
	}
	s.baseRate = cfg.Rate
	for s.inst == 0 {
		s.inst = uint16(cfg.Rand.Uint32())
	}
	s.nextID = uint16(cfg.Rand.Uint32()) // a fresh object id space per instance
	if cfg.Parity > 0 {
		c, err := fec.RS8(cfg.BlockLen, cfg.Parity)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrConfig, err)
		}
		s.codec = c
		// Stream symbols carry an 8-byte payload header, so the buffers
		// have room for it; other objects use the first SegmentSize bytes.
		s.srcBufs = make([][]byte, cfg.BlockLen)
		for i := range s.srcBufs {
			s.srcBufs[i] = make([]byte, cfg.SegmentSize+framing.StreamHeaderLen)
		}
		s.parBufs = make([][]byte, cfg.Parity)
		for i := range s.parBufs {
			s.parBufs[i] = make([]byte, cfg.SegmentSize+framing.StreamHeaderLen)
		}
	}
	if cfg.CC != nil {
		cc := *cfg.CC
		if cc.SegmentSize == 0 {
			cc.SegmentSize = cfg.SegmentSize
		}
		if cfg.Rate > 0 {
			cc.StartRate = cfg.Rate
		}
		s.cc = congestion.NewController(cc, now)
		s.SetRate(s.cc.Rate())
		s.ccNodes = make([]congestion.Node, 0, 16)
	}
	s.fileBuf = make([]byte, cfg.BlockLen*cfg.SegmentSize)
	s.listed = slices.Sorted(slices.Values(cfg.AckingNodes))
	for _, n := range cfg.AckingNodes {
		s.addNode(n)
		// Listed receivers are waited for by stream flow control from the
		// start, whether or not they were heard: a receiver that does not
		// announce itself (libnorm's) is known only this way.
		s.flowHeard(n)
	}
	s.nextProbe = now
	s.clampGRTT()
	return s, nil
}

// InstanceID returns the instance id this sender advertises.
func (s *Sender) InstanceID() uint16 { return s.inst }

// GRTT returns the current group round-trip time estimate.
func (s *Sender) GRTT() time.Duration { return s.grtt }

// SetRate changes the transmit rate (bytes per second). Under congestion
// control the next feedback sets it again; bound it with CC.MaxRate instead.
// Receivers that fall behind hold the sender below it (see Stats.PaceLimit).
func (s *Sender) SetRate(rate float64) {
	s.baseRate = rate
	s.applyRate()
}

// applyRate sets the pacer to the configured or congestion-controlled rate,
// or to the pace limit when that is lower.
func (s *Sender) applyRate() {
	rate := s.baseRate
	if s.paceLimit > 0 && s.paceLimit < rate {
		rate = s.paceLimit
	}
	if rate == s.pacer.Rate() {
		return
	}
	s.pacer.SetRate(rate)
	s.pacer.SetBurst(burstFor(s.cfg, rate))
	s.clampGRTT()
}

// burstFor is the pacer's bucket depth at rate (see Config.Burst).
func burstFor(cfg Config, rate float64) int {
	if cfg.Burst > 0 {
		return cfg.Burst
	}
	return max(16*(cfg.SegmentSize+64+cfg.PacketOverhead), int(rate*0.002))
}

// SendData queues data as a NORM_OBJECT_DATA with optional info (at most one
// segment). The sender keeps a reference to data until the object is purged
// from the transmit cache: do not modify it.
func (s *Sender) SendData(data []byte, info []byte) (uint16, error) {
	return s.enqueue(KindData, uint64(len(data)), data, nil, info)
}

// SendFile queues a NORM_OBJECT_FILE of size bytes read through r, never
// held whole in memory, with optional info (at most one segment; the
// reference implementation's receivers take it as the file name).
func (s *Sender) SendFile(r io.ReaderAt, size int64, info []byte) (uint16, error) {
	if size < 0 {
		return 0, ErrObjectSize
	}
	return s.enqueue(KindFile, uint64(size), nil, r, info)
}

func (s *Sender) enqueue(kind Kind, size uint64, data []byte, file io.ReaderAt, info []byte) (uint16, error) {
	if s.closed {
		return 0, ErrClosed
	}
	if len(info) > s.cfg.SegmentSize {
		return 0, ErrInfoTooLarge
	}
	part, err := fec.NewPartition(size, s.cfg.SegmentSize, s.cfg.BlockLen)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrObjectSize, err)
	}
	if err := s.makeRoom(int64(size)); err != nil {
		return 0, err
	}
	o := &txObject{
		id: s.nextID, kind: kind, size: size, part: part, data: data, file: file,
		info: append([]byte(nil), info...), blocks: part.Blocks(),
		parityUsed: make([]uint8, part.Blocks()),
	}
	o.fti, err = framing.AppendFTI(nil, framing.FECRS8, framing.FTI{
		TransferLength: size, SymbolLength: uint16(s.cfg.SegmentSize),
		MaxBlockLen: uint32(s.cfg.BlockLen), Parity: uint16(s.cfg.Parity),
	})
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrObjectSize, err)
	}
	if len(o.info) == 0 {
		o.infoSent = true
	}
	s.nextID++
	s.objs = append(s.objs, o)
	s.cacheSz += int64(size)
	s.flushCount = 0
	return o.id, nil
}

// makeRoom purges sent objects until one more of size bytes fits.
func (s *Sender) makeRoom(size int64) error {
	for len(s.objs) > 0 && (len(s.objs)+1 > s.cfg.CacheObjects || s.cacheSz+size > s.cfg.CacheBytes) {
		o := s.objs[0]
		if !o.sent {
			return ErrCacheFull
		}
		if !s.objConfirmed(o) {
			s.objHoldBack()
			return ErrCacheFull
		}
		s.purge(o)
	}
	s.objGoOn()
	return nil
}

func (s *Sender) purge(o *txObject) {
	s.objs = s.objs[1:]
	s.unsentFrom = max(s.unsentFrom-1, 0)
	if o.stream != nil {
		s.streams--
	}
	s.cacheSz -= int64(o.size)
	if s.pcObj == o {
		s.pcObj, s.pcValid = nil, false
	}
	s.emit(Event{Kind: EventPurged, Object: o.id})
}

// blockLen returns the number of source symbols of block b, 0 if o has no
// such block (for a stream: none sealed, or overwritten in the ring).
func (o *txObject) blockLen(b int) int {
	if o.stream != nil {
		return streamBlockLen(o.stream, b)
	}
	if b < 0 || b >= o.blocks {
		return 0
	}
	return o.part.BlockLen(b)
}

// slot maps block b to its index in the per-block arrays (parityUsed,
// repairAt, repairN): streams reuse them around the ring.
func (o *txObject) slot(b int) int {
	if o.stream != nil {
		return b % o.stream.ringBlocks
	}
	return b
}

// object returns the cached object with id, or nil.
func (s *Sender) object(id uint16) *txObject {
	if len(s.objs) == 0 {
		return nil
	}
	off := int(uint16(id - s.objs[0].id))
	if off >= len(s.objs) {
		return nil
	}
	return s.objs[off]
}

// SetInfoExtension adds header extensions (wire form, see
// framing.AppendExtension) to object id's NORM_INFO, for data a Shoal
// receiver can use and other receivers skip, such as a file's digest. Call
// it right after queueing the object, before its NORM_INFO goes out.
func (s *Sender) SetInfoExtension(id uint16, ext framing.Extensions) error {
	o := s.object(id)
	if o == nil {
		return ErrUnknownObject
	}
	if err := ext.Check(); err != nil {
		return err
	}
	var err error
	x := append(framing.Extensions(nil), o.fti...)
	for e, off, ok := ext.Next(0); ok; e, off, ok = ext.Next(off) {
		if x, err = framing.AppendExtension(x, e.Raw); err != nil {
			return err
		}
	}
	o.infoX = x
	return nil
}

// SetWatermark asks the nodes in Config.AckingNodes (and, with
// TrackReceivers, every receiver heard) to acknowledge that they hold object
// id and everything sent before it. The result arrives as one EventAck per
// node and an EventWatermark when every node has answered or the sender gave
// up after RobustFactor unanswered requests in a row (a NACK from a node
// still owing its answer starts the count again).
func (s *Sender) SetWatermark(id uint16) error {
	o := s.object(id)
	if o == nil {
		return ErrUnknownObject
	}
	w := &watermark{obj: id, pending: map[uint32]bool{}}
	b, k := lastSymbol(o)
	w.ref = framing.SymbolRef{FECID: framing.FECRS8, ObjectID: id, PayloadID: framing.PayloadID{Block: uint32(b), Symbol: uint16(k)}}
	for _, n := range s.nodes {
		w.pending[n] = true
	}
	s.wm = w
	return nil
}

// addNode adds node to the acking nodes if it is new, and notes it was
// heard now. Work is logarithmic in the number of nodes, and the list
// stops growing at Config.MaxNodes (see evictNodes).
func (s *Sender) addNode(node uint32) {
	i, found := slices.BinarySearch(s.nodeSet, node)
	if found {
		s.nodeSeen[i] = s.now
		return
	}
	if len(s.nodes) >= s.cfg.MaxNodes && !s.evictNodes() {
		s.stats.NodesRefused++
		return
	}
	i, _ = slices.BinarySearch(s.nodeSet, node)
	s.nodeSet = slices.Insert(s.nodeSet, i, node)
	s.nodeSeen = slices.Insert(s.nodeSeen, i, s.now)
	s.nodes = append(s.nodes, node)
	if s.wm != nil {
		s.wm.pending[node] = true
	}
}

// lastSymbol returns the last block and source symbol id of o (for a
// stream, of the last segment sent).
func lastSymbol(o *txObject) (block, sym int) {
	if st := o.stream; st != nil {
		if st.next == 0 {
			return 0, 0
		}
		n := st.next - 1
		return int(n / uint64(st.k)), int(n % uint64(st.k))
	}
	if o.blocks == 0 {
		return 0, 0
	}
	return o.blocks - 1, o.part.BlockLen(o.blocks-1) - 1
}

// SendCommand queues a NORM_CMD(APPLICATION) with content (at most one
// segment), sent ahead of data and once: receivers see it as an
// EventCommand. Commands are not repaired; an application that needs one to
// arrive sends it again or asks for acknowledgement.
func (s *Sender) SendCommand(content []byte) error {
	if s.closed {
		return ErrClosed
	}
	if len(content) > s.cfg.SegmentSize {
		return ErrInfoTooLarge
	}
	s.cmds = append(s.cmds, append([]byte(nil), content...))
	return nil
}

// Close ends the session: once everything queued has been sent and
// flushed, the sender announces NORM_CMD(EOT) and reports EventClosed.
func (s *Sender) Close() { s.closed = true }

// Events returns the events since the last call. The slice is reused by
// the next call into the Sender.
func (s *Sender) Events() []Event {
	ev := s.events
	s.events = s.events[:0]
	return ev
}

func (s *Sender) emit(e Event) { s.events = append(s.events, e) }

// Stats returns counters since New.
func (s *Sender) Stats() Stats {
	st := s.stats
	st.GRTT = s.grtt
	st.Rate = s.pacer.Rate()
	st.PaceLimit, st.PaceNode = s.paceLimit, s.paceNode
	if s.cc != nil {
		st.CLR, _ = s.cc.CLR()
		st.SlowStart = s.cc.SlowStart()
	}
	return st
}

func (s *Sender) clampGRTT() {
	min := time.Millisecond
	if r := s.pacer.Rate(); r > 0 {
		if seg := time.Duration(float64(s.cfg.SegmentSize) / r * float64(time.Second)); seg > min {
			min = seg
		}
	}
	if s.grtt < min {
		s.grtt = min
	}
	if s.grtt > s.cfg.GRTTMax {
		s.grtt = s.cfg.GRTTMax
	}
}

// senderFields returns the fields every sender message carries. The
// quantization (logarithms) is redone only when the GRTT changed, not per
// packet.
func (s *Sender) senderFields() framing.SenderFields {
	if s.fieldsFor != s.grtt || s.fields.InstanceID != s.inst || s.fieldsStale {
		s.fieldsFor, s.fieldsStale = s.grtt, false
		s.fields = framing.SenderFields{
			InstanceID: s.inst,
			GRTT:       framing.QuantizeRTT(s.grtt),
			Backoff:    framing.QuantizeBackoff(s.backoff),
			GroupSize:  framing.QuantizeGroupSize(s.cfg.GroupSize),
		}
	}
	return s.fields
}

// adaptTimers sets the back-off factor to the group heard recently, with
// Config.AdaptiveBackoff.
func (s *Sender) adaptTimers(now time.Time) {
	if !s.adaptBO {
		return
	}
	heard := s.group.Estimate(now)
	if s.lastProbe.IsZero() || now.Sub(s.firstProbe) < nack.AggregationWindow(s.grtt, float64(s.cfg.Backoff)+1) {
		// Until the group has had time to answer a probe (receivers
		// answer within a back-off, and the GRTT guess of a new session
		// may still be far off), a small count means nothing yet.
		heard = 0
	}
	if b := nack.GroupBackoff(heard, s.cfg.Backoff); b != s.backoff {
		s.backoff, s.fieldsStale = b, true
	}
}

func (s *Sender) header(t framing.Type) framing.Header {
	h := framing.Header{Type: t, Sequence: s.seq, SourceID: s.cfg.NodeID}
	s.seq++
	return h
}

// timestamp converts engine time to the wire form used by probes; only
// differences matter, so the epoch is the sender's start.
func (s *Sender) timestamp(now time.Time) framing.Timestamp {
	us := now.Sub(s.epoch).Microseconds()
	return framing.Timestamp{Sec: uint32(us / 1e6), Usec: uint32(us % 1e6)}
}

func (s *Sender) since(now time.Time, t framing.Timestamp) time.Duration {
	us := now.Sub(s.epoch).Microseconds()
	sent := int64(t.Sec)*1e6 + int64(t.Usec)
	return time.Duration(us-sent) * time.Microsecond
}

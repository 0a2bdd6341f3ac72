// Package secure authenticates, and optionally encrypts, NORM packets with
// an EXT_AUTH header extension in the shape RFC 6584 gives it: header
// extension type 1, an authentication scheme id, and a group MAC and/or a
// digital signature computed over the whole packet with those fields
// zeroed.
//
// A Sealer adds EXT_AUTH to a packet an engine built; an Opener checks it
// on a received packet, enforces a replay guard, decrypts the payload and
// hands back the packet exactly as the sending engine built it, so the
// engines never see EXT_AUTH. Everything that fails is dropped before any
// state changes (the Opener's own replay state included) and counted in
// Stats by cause.
//
// # Wire layout
//
// RFC 6584's text was not at hand while this was written, so Shoal's layout
// is documented here in full. EXT_AUTH is always the last extension of the
// header extension area (it ends at hdr_len). All integers are big-endian.
//
//	offset  size  field
//	0       1     het = 1 (EXT_AUTH)
//	1       1     hel: length of the extension in 32-bit words
//	2       1     ASID (high 4 bits: 1, or 2 for ECDSA P-256 signatures) | flags (low 4 bits)
//	3       1     key id of the group key (0 without one)
//	4       8     packet counter of the sending node
//	12      4     send time, Unix seconds
//	16      64    signature, if flag SIG (0x4): Ed25519, or with ASID 2
//	              ECDSA P-256 over SHA-256 of the message, as r and s of 32 bytes
//	80      1     with flags SIG and BATCH (0x8): the packet's index in its batch
//	81      1     with BATCH: depth d of the batch's hash tree (0-4)
//	82      2     with BATCH: reserved, zero
//	84      16·d  with BATCH: the path: the sibling hash at each level, leaf first
//	...     16    group tag, if flag MAC (0x1) or GCM (0x2)
//
// Flags: MAC (0x1) = HMAC-SHA-256 truncated to 128 bits over the whole
// packet; GCM (0x2) = the tag of AES-256-GCM, which encrypts the payload
// of NORM_DATA, NORM_INFO and NORM_CMD(APPLICATION) (everything after
// hdr_len) and authenticates the rest of the packet as associated data
// (for other messages the whole packet is associated data); SIG (0x4) =
// a signature over the whole packet (Ed25519, or ECDSA P-256 where the
// ASID is 2; a receiver tries only trusted keys of that kind). MAC and GCM exclude each other. The
// overhead is 32 bytes with a group key, 96 with a group key and a
// signature of its own, and up to 164 with a batch signature.
//
// Per-packet Ed25519 signatures cost tens of microseconds each, so
// Sealer.SealAll signs batches of up to 16 packets (what one poll of the
// engines produces) with one signature over the root of a hash tree whose
// leaves are the packets (SHA-256 truncated to 128 bits, leaf and inner
// nodes told apart by a prefix byte; the signed message is a fixed label
// and the root). Each packet carries its index and path, so a receiver
// checks it alone, whatever else of the batch it lost, and verifies the
// signature once per batch (it caches verified roots).
//
// Order: the tag is computed with the signature area and tag zeroed;
// the signature is computed over the packet with the tag in place and the
// signature area zeroed (for a batch, the leaf is that packet), so
// verifying the cheap tag first rejects outsiders before any public-key
// work.
//
// The group key is 32 secret bytes; the HMAC and AES keys are derived from
// it with HKDF-SHA-256 under distinct labels. The GCM nonce is the node id
// of the packet's source (4 bytes) followed by its 64-bit counter. Each
// node's counter starts at its Unix time in nanoseconds when its Sealer is
// made and grows by one per packet, so a restarted node (a new NORM
// instance) continues above its old counters and a nonce is not reused
// under one key as long as node ids are unique, the node sends fewer than
// 10^9 packets a second, and its clock does not step back across a
// restart.
//
// # Replay guard
//
// The Opener keeps, per source node id, the highest counter accepted and a
// 1024-packet sliding window below it: duplicates and packets older than
// the window are rejected. A sender message (INFO, DATA, CMD) carrying
// another instance id than the one last seen from its node is accepted
// only if its counter is above every counter seen, i.e. only a later
// instance is. Every packet's send time must be within MaxSkew (default
// 30 s) of the receiver's clock, so a capture replayed later delivers
// nothing even to a receiver that never saw the original: nodes need
// clocks that agree within MaxSkew.
//
// # Trust model
//
// A group key proves that a packet came from some holder of the key: it
// stops outsiders who know node and instance ids from injecting data,
// commands or feedback, and (with GCM) from reading payloads. It does not
// stop a key holder from impersonating another node: signatures do that
// for sender messages, when receivers list the public keys they trust.
// Neither hides traffic patterns (headers, sizes and timing are visible)
// nor prevents denial of service by flooding the link.
package secure

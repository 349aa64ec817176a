// Package session implements the secure channel between two actormesh nodes (wire protocol actormesh/1).
//
// It owns the node identity (an ed25519 key; its public key is the NodeID), the text form of peer addresses
// ("<id>@host:port"), the Noise XX handshake that authenticates both peers and binds their Noise static keys to
// their identities, and Conn: the encrypted, framed connection that carries application messages afterwards.
//
// Wire format after the handshake: a stream of Noise transport frames, each a 2-byte big-endian ciphertext length
// (at most 65535) followed by the ciphertext. The decrypted plaintexts, concatenated, are a byte stream of
// application messages, each a 4-byte big-endian length followed by that many bytes. Small messages share frames
// and large ones span several; the receiver enforces its maximum message size before allocating a message.
package session

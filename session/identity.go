package session

import (
	"cmp"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Errors of LoadIdentity and LoadOrCreateIdentity.
var (
	// ErrBadKeyFile means the key file exists but its content is not a valid identity.
	ErrBadKeyFile = errors.New("session: bad key file")
	// ErrKeyFilePermissions means the key file is readable or writable by group or others.
	ErrKeyFilePermissions = errors.New("session: key file permissions too open")
	// ErrEmptyKeyFile means the key file exists and stayed empty for emptyKeyFileWait: a SaveNew on a filesystem
	// without hard links that stopped between claiming the file and renaming the key over it left it so. It wraps
	// ErrBadKeyFile. The file holds no key: deleting it lets LoadOrCreateIdentity or node keygen make a new one.
	ErrEmptyKeyFile = fmt.Errorf("%w: empty file", ErrBadKeyFile)
)

// emptyKeyFileWait bounds how long LoadIdentity waits for an empty key file to fill before it fails with
// ErrEmptyKeyFile: SaveNew, on a filesystem without hard links, claims the path with an empty file and renames the
// complete key over it a moment later, and a node starting meanwhile refused the empty claim as a bad key file (21
// calls in 2000 of racing LoadOrCreateIdentity, an audit's finding). It polls every emptyKeyFilePoll at first,
// doubling up to emptyKeyFilePollMax.
const (
	emptyKeyFileWait    = time.Second
	emptyKeyFilePoll    = time.Millisecond
	emptyKeyFilePollMax = 50 * time.Millisecond
)

// keyFilePrefix starts the single line of a key file; the hex of the 32-byte ed25519 seed follows.
const keyFilePrefix = "actormesh-ed25519-seed:"

// maxKeyFileSize bounds what LoadIdentity reads; a valid file is 88 bytes.
const maxKeyFileSize = 1024

// noiseStaticContext prefixes the Noise static public key in the message an identity signs.
const noiseStaticContext = "actormesh-noise-static-v1:"

// Identity is a node's long-term ed25519 key pair. Create it with GenerateIdentity, IdentityFromSeed,
// LoadIdentity or LoadOrCreateIdentity; it is safe for concurrent use.
type Identity struct {
	priv ed25519.PrivateKey

	// The Noise static key pair and its signature by priv, made on first use by a handshake.
	staticOnce sync.Once
	static     *ecdh.PrivateKey
	staticSig  []byte
	staticErr  error
}

// GenerateIdentity returns a new random identity.
func GenerateIdentity() (*Identity, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("session: generate identity: %w", err)
	}
	return &Identity{priv: priv}, nil
}

// IdentityFromSeed returns the identity derived from a 32-byte ed25519 seed. The same seed always gives the same
// identity, which makes it handy for tests.
func IdentityFromSeed(seed []byte) (*Identity, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("session: identity seed must be %d bytes, got %d", ed25519.SeedSize, len(seed))
	}
	return &Identity{priv: ed25519.NewKeyFromSeed(seed)}, nil
}

// LoadIdentity reads an identity saved by Save. It refuses a file that group or others may access (wrapping
// ErrKeyFilePermissions) and malformed content (wrapping ErrBadKeyFile); a missing file gives an error matching
// fs.ErrNotExist. An empty file is read again for up to a second, since SaveNew, on a filesystem without hard
// links, leaves the file empty for a moment; one still empty then fails with an error wrapping ErrEmptyKeyFile.
func LoadIdentity(path string) (*Identity, error) { return loadIdentity(path, emptyKeyFileWait) }

// loadIdentity is LoadIdentity waiting up to wait for an empty key file to fill. The file is opened again at every
// try: SaveNew renames the key over the empty claim, a file of its own.
func loadIdentity(path string, wait time.Duration) (*Identity, error) {
	deadline := time.Now().Add(wait)
	pause := emptyKeyFilePoll
	for {
		id, err := loadIdentityOnce(path)
		if !errors.Is(err, ErrEmptyKeyFile) {
			return id, err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil, fmt.Errorf("%w: %s has stayed empty for %v (a key creation stopped before it wrote the "+
				"key there; the file holds no key: delete it to have a new one made)", ErrEmptyKeyFile, path, wait)
		}
		time.Sleep(min(pause, left))
		pause = min(2*pause, emptyKeyFilePollMax)
	}
}

// loadIdentityOnce is one try of loadIdentity: an empty file fails with ErrEmptyKeyFile at once.
func loadIdentityOnce(path string) (*Identity, error) {
	// A key that is not a regular file (a FIFO, a device) is refused: opening a FIFO blocked until a writer came,
	// for good, deaf to the first SIGTERM. It is opened without blocking and checked once open, so that a FIFO put
	// in the file's place after a check by name cannot block the open either.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("session: load identity: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("session: load identity: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file (%s)", ErrBadKeyFile, path, st.Mode().Type())
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("%w: %s has mode %04o, group/others must have no access (chmod 600 %s)",
			ErrKeyFilePermissions, path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("session: load identity %s: %w", path, err)
	}
	if len(data) > maxKeyFileSize {
		return nil, fmt.Errorf("%w: %s: larger than %d bytes", ErrBadKeyFile, path, maxKeyFileSize)
	}
	if len(data) == 0 {
		return nil, ErrEmptyKeyFile
	}
	seed, err := parseKeyFile(string(data))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %s", ErrBadKeyFile, path, err)
	}
	return IdentityFromSeed(seed)
}

// parseKeyFile returns the seed held in the content of a key file.
func parseKeyFile(s string) ([]byte, error) {
	line := strings.TrimSuffix(strings.TrimSuffix(s, "\n"), "\r")
	if strings.ContainsAny(line, "\r\n") {
		return nil, errors.New("more than one line")
	}
	hexSeed, ok := strings.CutPrefix(line, keyFilePrefix)
	if !ok {
		return nil, fmt.Errorf("missing %q prefix", keyFilePrefix)
	}
	if len(hexSeed) != 2*ed25519.SeedSize {
		return nil, fmt.Errorf("seed must be %d hex characters, got %d", 2*ed25519.SeedSize, len(hexSeed))
	}
	seed, err := hex.DecodeString(hexSeed)
	if err != nil {
		return nil, fmt.Errorf("seed is not hex: %w", err)
	}
	return seed, nil
}

// LoadOrCreateIdentity loads the identity at path or, if there is no file, generates one and saves it there,
// creating the parent directory (mode 0700) if needed. created reports whether a new identity was made. An empty
// file, which another caller's SaveNew holds for a moment, is waited for as LoadIdentity does. Like Save,
// it removes the temporary key files a crashed save of path left, once they are a minute old.
func LoadOrCreateIdentity(path string) (id *Identity, created bool, err error) {
	return loadOrCreateIdentity(path, os.Link)
}

// loadOrCreateIdentity is LoadOrCreateIdentity publishing a new key file with link (see save).
func loadOrCreateIdentity(path string, link func(oldname, newname string) error) (id *Identity, created bool, err error) {
	id, err = LoadIdentity(path)
	if err == nil {
		removeStaleTemps(path, time.Now()) // a node that loads its key at every start never saves it
	}
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return id, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("session: create identity: %w", err)
	}
	if id, err = GenerateIdentity(); err != nil {
		return nil, false, err
	}
	if err := id.save(path, link); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Another caller (a goroutine, another process) created it meanwhile: that one is the identity. A
			// rename would have replaced its key, and one of the two callers would have run with a lost key.
			id, err = LoadIdentity(path)
			return id, false, err
		}
		return nil, false, err
	}
	return id, true, nil
}

// Save writes the identity to path with mode 0600, replacing the file there, atomically: it writes a temporary file
// in the same directory, syncs it and renames it over path, so that path holds the old key or the new one, never a
// part of either. The file is one line of text: "actormesh-ed25519-seed:" and the hex seed. It removes the temporary
// files of earlier saves of path that a crash left, once they are a minute old.
func (id *Identity) Save(path string) error { return id.save(path, nil) }

// SaveNew is Save for a path that must not exist yet: it fails with an error wrapping fs.ErrExist, rather than
// replace the file, if path exists or appears meanwhile. The new file appears whole: the temporary file is
// published at path with a hard link, which fails if path exists. On a filesystem without hard links (vfat, some
// FUSE and SMB mounts) it claims path with an exclusive create instead and renames the temporary file over its
// claim: path then holds an empty file for the moment between the two (a crash there leaves it empty), never a part
// of a key; LoadIdentity waits for such a file to fill (ErrEmptyKeyFile if it stays empty).
func (id *Identity) SaveNew(path string) error { return id.save(path, os.Link) }

// save is Save with link nil, and SaveNew with link (os.Link, or a stand-in for tests of filesystems without hard
// links) to publish the temporary file at path.
func (id *Identity) save(path string, link func(oldname, newname string) error) (err error) {
	if !id.Valid() {
		return errors.New("session: save identity: the identity holds no key")
	}
	removeStaleTemps(path, time.Now())
	dir, base := keyDir(path)
	tmp, err := os.CreateTemp(dir, tempPrefix(base)+"*")
	if err != nil {
		return fmt.Errorf("session: save identity: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	// CreateTemp uses 0600 already; be explicit since the mode is the point.
	if err := tmp.Chmod(0o600); err != nil && runtime.GOOS != "windows" {
		return fmt.Errorf("session: save identity: %w", err)
	}
	line := keyFilePrefix + hex.EncodeToString(id.priv.Seed()) + "\n"
	if _, err := tmp.WriteString(line); err != nil {
		return fmt.Errorf("session: save identity: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("session: save identity: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("session: save identity: %w", err)
	}
	if link != nil {
		err = publishNew(tmp.Name(), path, link)
		os.Remove(tmp.Name())
	} else {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("session: save identity: %w", err)
	}
	// Make the rename durable; not every platform can sync a directory, so this is best effort.
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// publishNew makes the complete key file tmp appear at path, unless path exists (an error wrapping fs.ErrExist): with
// link, or, where the filesystem has no hard links, by claiming path with an exclusive create and renaming tmp over
// the claim.
func publishNew(tmp, path string, link func(oldname, newname string) error) error {
	err := link(tmp, path)
	if err == nil || !linkUnsupported(err) {
		return err
	}
	claim, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := claim.Close(); err != nil {
		os.Remove(path)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(path) // the empty claim is ours: no key in it
		return err
	}
	return nil
}

// linkUnsupported tells whether a failed link means the filesystem has no hard links (vfat's EPERM, FUSE and SMB
// mounts' ENOTSUP, ENOSYS or EXDEV), as opposed to path existing or an I/O error.
func linkUnsupported(err error) bool {
	return errors.Is(err, errors.ErrUnsupported) || errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EXDEV) ||
		errors.Is(err, syscall.ENOTSUP) || errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.ENOSYS)
}

// staleTempAge is how old a temporary key file of save must be for a later save to remove it: a process that
// stopped between writing it and linking it left it behind, a private key in a file of its own; one of another
// save under way, a few milliseconds old, is left alone.
const staleTempAge = time.Minute

// keyDir returns the directory of the key file at path ("." for a bare name) and the file's name.
func keyDir(path string) (dir, base string) {
	dir, base = filepath.Split(path)
	return cmp.Or(dir, "."), base
}

// tempPrefix is how the temporary files of saves of the key file base begin.
func tempPrefix(base string) string { return "." + base + ".tmp-" }

// removeStaleTemps removes the temporary files that saves of the key file at path left behind at least
// staleTempAge before now. It is best effort: what it cannot list or remove stays.
func removeStaleTemps(path string, now time.Time) {
	dir, base := keyDir(path)
	entries, _ := os.ReadDir(dir)
	prefix := tempPrefix(base)
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), prefix) || !e.Type().IsRegular() {
			continue
		}
		if fi, err := e.Info(); err == nil && now.Sub(fi.ModTime()) >= staleTempAge {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// Valid reports whether id holds a key. The zero Identity does not: make one with GenerateIdentity, LoadIdentity,
// LoadOrCreateIdentity or IdentityFromSeed.
func (id *Identity) Valid() bool { return id != nil && len(id.priv) == ed25519.PrivateKeySize }

// NodeID returns the identity's public key; the zero NodeID for an identity that holds no key (Valid).
func (id *Identity) NodeID() NodeID {
	var n NodeID
	if id.Valid() {
		copy(n[:], id.priv.Public().(ed25519.PublicKey))
	}
	return n
}

// String names the identity by its NodeID, never showing the private key: formatted with %v, the struct printed
// its 64 private bytes, seed included (an audit's finding).
func (id *Identity) String() string {
	if !id.Valid() {
		return "Identity(none)"
	}
	return "Identity(" + id.NodeID().String() + ")"
}

// GoString is String, for %#v.
func (id *Identity) GoString() string { return id.String() }

// Format writes String for every verb (%x and %+v included), so that no verb prints the private key.
func (id *Identity) Format(f fmt.State, _ rune) { _, _ = fmt.Fprint(f, id.String()) }

// Sign returns the ed25519 signature of msg, as is: the caller must never sign bytes another party chose. Every
// signature of the library starts with a context string of its own (noise static keys: "actormesh-noise-static-v1:",
// node records, gossip messages, tree beacons), and a peer that obtained this identity's signature over
// "actormesh-noise-static-v1:" || an X25519 key of its own would complete handshakes as this node; an application
// signing for its own protocol should prefix a context string of its own. It panics on an identity that holds no
// key (Valid).
func (id *Identity) Sign(msg []byte) []byte {
	if !id.Valid() {
		panic("session: Sign with an identity that holds no key")
	}
	return ed25519.Sign(id.priv, msg)
}

// noiseStatic returns the identity's X25519 Noise static key pair and the signature binding it to the identity:
// Sign(noiseStaticContext || public key). It is made once, on first use, and reused by every handshake; forward
// secrecy comes from the ephemeral keys.
func (id *Identity) noiseStatic() (*ecdh.PrivateKey, []byte, error) {
	id.staticOnce.Do(func() {
		id.static, id.staticErr = ecdh.X25519().GenerateKey(rand.Reader)
		if id.staticErr != nil {
			id.staticErr = fmt.Errorf("session: generate noise static key: %w", id.staticErr)
			return
		}
		id.staticSig = id.Sign(noiseStaticMessage(id.static.PublicKey().Bytes()))
	})
	return id.static, id.staticSig, id.staticErr
}

// noiseStaticMessage is what an identity signs to bind the Noise static public key pub to itself.
func noiseStaticMessage(pub []byte) []byte {
	return append([]byte(noiseStaticContext), pub...)
}

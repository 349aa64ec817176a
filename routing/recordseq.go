package routing

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// maxRecordSeqFile bounds the record sequence file read: it holds one decimal number.
const maxRecordSeqFile = 64

// NextRecordSeq returns the sequence number of the node's next record and keeps it in the file at path, before
// returning it: the clock in Unix nanoseconds, or one more than the number the file holds if that is higher. A
// node's peers keep the record of the highest sequence number they have seen for it, so a node whose clock was
// ahead in its last run (a bad clock, corrected since) would otherwise sign a record they take for stale, and they
// would go on sending the network to its old address until its clock passed the old number (go-ethereum's
// LocalNode keeps its sequence number in its node database for the same reason). A missing file counts as 0. The
// error tells of a file that is no regular file (left alone), of one that holds no number (overwritten), or of a
// failed write; the number returned is then the clock's, or not kept, and the caller may still use it.
func NextRecordSeq(path string, now time.Time) (uint64, error) {
	seq := uint64(max(now.UnixNano(), 1))
	last, err := readRecordSeq(path)
	if err != nil && !errors.Is(err, errBadRecordSeq) {
		return seq, err
	}
	if last >= seq {
		seq = last
		if last < math.MaxUint64 {
			seq = last + 1
		}
	}
	if werr := writeFileAtomic(path, []byte(strconv.FormatUint(seq, 10)+"\n")); werr != nil {
		return seq, errors.Join(err, fmt.Errorf("routing: save record sequence number: %w", werr))
	}
	return seq, err
}

// errBadRecordSeq is wrapped by the errors about a record sequence file whose content is no number.
var errBadRecordSeq = errors.New("routing: bad record sequence file")

// readRecordSeq reads the number a record sequence file holds; a missing file holds 0.
func readRecordSeq(path string) (uint64, error) {
	// Opened without blocking and checked once open, as the peer store is (a FIFO would block the open).
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("routing: open record sequence file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("routing: record sequence file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return 0, fmt.Errorf("routing: record sequence file %s is not a regular file (%s)", path, st.Mode().Type())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxRecordSeqFile+1))
	if err != nil {
		return 0, fmt.Errorf("routing: read record sequence file: %w", err)
	}
	if len(b) > maxRecordSeqFile {
		return 0, fmt.Errorf("%w: %s is over %d bytes", errBadRecordSeq, path, maxRecordSeqFile)
	}
	seq, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %s: %w", errBadRecordSeq, path, err)
	}
	return seq, nil
}

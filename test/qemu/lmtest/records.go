package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// A record is one fixed-size block of the writer's file:
//
//	[0:8)     magic "LMTREC01"
//	[8:16)    sequence number, little endian, from 1
//	[16:24)   write time, Unix nanoseconds
//	[24:480)  payload, a function of the sequence number alone
//	[480:512) SHA-256 of bytes [0:480)
//
// Record N lives at offset (N-1)*RecordSize, so a missing, reordered, torn
// or stale record is found by position, checksum and payload.
const (
	RecordSize  = 512
	recordMagic = "LMTREC01"
	payloadOff  = 24
	sumOff      = RecordSize - sha256.Size
)

// payload fills p with bytes derived from seq only, so verify can tell a
// record with a good checksum but the wrong content (e.g. an old block).
func payload(seq uint64, p []byte) {
	var seed [8]byte
	binary.LittleEndian.PutUint64(seed[:], seq)
	block := sha256.Sum256(seed[:])
	for i := 0; i < len(p); i += len(block) {
		copy(p[i:], block[:])
		block = sha256.Sum256(block[:])
	}
}

// encodeRecord builds record seq written at time t.
func encodeRecord(seq uint64, t time.Time) []byte {
	b := make([]byte, RecordSize)
	copy(b, recordMagic)
	binary.LittleEndian.PutUint64(b[8:], seq)
	binary.LittleEndian.PutUint64(b[16:], uint64(t.UnixNano()))
	payload(seq, b[payloadOff:sumOff])
	sum := sha256.Sum256(b[:sumOff])
	copy(b[sumOff:], sum[:])
	return b
}

// checkRecord reports why b is not a valid record seq, or nil.
func checkRecord(b []byte, seq uint64) error {
	if len(b) != RecordSize {
		return fmt.Errorf("short record (%d bytes)", len(b))
	}
	if string(b[:8]) != recordMagic {
		if bytes.Count(b, []byte{0}) == len(b) {
			return errors.New("zeroes (never written or lost)")
		}
		return errors.New("bad magic")
	}
	sum := sha256.Sum256(b[:sumOff])
	if !bytes.Equal(sum[:], b[sumOff:]) {
		return errors.New("checksum mismatch (torn or corrupted)")
	}
	if got := binary.LittleEndian.Uint64(b[8:]); got != seq {
		return fmt.Errorf("sequence %d where %d belongs", got, seq)
	}
	want := make([]byte, sumOff-payloadOff)
	payload(seq, want)
	if !bytes.Equal(want, b[payloadOff:sumOff]) {
		return errors.New("payload mismatch")
	}
	return nil
}

// writeAcked records n as the highest acknowledged sequence in path,
// atomically (write a temporary file, rename over), so a reader never sees
// a partial number.
func writeAcked(path string, n uint64) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(strconv.FormatUint(n, 10)+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func cmdWriter(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("writer", flag.ContinueOnError)
	file := fs.String("file", "", "record file to append to")
	acked := fs.String("acked", "", "file that holds the highest fsync'ed sequence")
	interval := fs.Duration("interval", 20*time.Millisecond, "pause between records")
	count := fs.Uint64("count", 0, "stop after this many records (0: until SIGTERM/SIGINT)")
	duration := fs.Duration("duration", 0, "stop after this long (0: no limit)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *file == "" || *acked == "" {
		return errors.New("--file and --acked are required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	n, err := writeRecords(ctx, *file, *acked, *interval, *count)
	fmt.Fprintf(stdout, "acked=%d\n", n)
	return err
}

// writeRecords appends records to path until ctx ends or count records are
// written, fsyncing each one and only then recording it as acknowledged. It
// resumes after the last whole record already in the file. It returns the
// highest acknowledged sequence number.
func writeRecords(ctx context.Context, path, ackedPath string, interval time.Duration, count uint64) (uint64, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if st.Size()%RecordSize != 0 {
		return 0, fmt.Errorf("%s: size %d is not a whole number of records", path, st.Size())
	}
	acked := uint64(st.Size() / RecordSize)
	if err := writeAcked(ackedPath, acked); err != nil {
		return acked, err
	}
	for written := uint64(0); count == 0 || written < count; written++ {
		select {
		case <-ctx.Done():
			return acked, nil
		default:
		}
		seq := acked + 1
		if _, err := f.WriteAt(encodeRecord(seq, time.Now()), int64(seq-1)*RecordSize); err != nil {
			return acked, fmt.Errorf("write record %d: %w", seq, err)
		}
		if err := f.Sync(); err != nil {
			return acked, fmt.Errorf("fsync record %d: %w", seq, err)
		}
		acked = seq
		if err := writeAcked(ackedPath, acked); err != nil {
			return acked, err
		}
		if interval > 0 {
			select {
			case <-ctx.Done():
				return acked, nil
			case <-time.After(interval):
			}
		}
	}
	return acked, nil
}

func cmdVerify(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	file := fs.String("file", "", "record file")
	upto := fs.Uint64("upto", 0, "highest acknowledged sequence; records 1..N must all be intact")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *file == "" {
		return errors.New("--file is required")
	}
	f, err := os.Open(*file)
	if err != nil {
		return err
	}
	defer f.Close()
	res, err := verifyRecords(f, *upto)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "records_ok=%d records_bad=%d records_extra=%d\n", res.OK, res.Bad, res.Extra)
	if res.FirstBad != "" {
		fmt.Fprintf(stdout, "first_bad=%s\n", res.FirstBad)
	}
	if res.Bad > 0 {
		return fmt.Errorf("%d of %d acknowledged records lost or damaged", res.Bad, *upto)
	}
	return nil
}

// verifyResult counts records 1..upto that are intact (OK) or not (Bad),
// and valid records beyond upto (Extra: written but not yet acknowledged
// when the count was taken, which is allowed).
type verifyResult struct {
	OK, Bad, Extra uint64
	FirstBad       string
}

func verifyRecords(r io.Reader, upto uint64) (verifyResult, error) {
	var res verifyResult
	buf := make([]byte, RecordSize)
	for seq := uint64(1); ; seq++ {
		_, err := io.ReadFull(r, buf)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			if seq <= upto {
				res.Bad += upto - seq + 1
				if res.FirstBad == "" {
					res.FirstBad = fmt.Sprintf("%d: file ends", seq)
				}
			}
			return res, nil
		}
		if err != nil {
			return res, err
		}
		bad := checkRecord(buf, seq)
		switch {
		case seq <= upto && bad == nil:
			res.OK++
		case seq <= upto:
			res.Bad++
			if res.FirstBad == "" {
				res.FirstBad = fmt.Sprintf("%d: %v", seq, bad)
			}
		case bad == nil:
			res.Extra++
		default:
			// Past the acknowledged range a torn last record is legal;
			// stop counting there.
			return res, nil
		}
	}
}

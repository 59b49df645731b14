package wal

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
)

// ReadFrom calls fn for every durable record with LSN >= from, in LSN order,
// across generations. It sees the records that were durable when it was
// called; it is safe to call concurrently with Append, Roll and
// DeleteThrough. Every generation it reads is verified again: header,
// signature, chain to the generation before, record CRCs and LSN continuity.
// from == 0 means from the oldest record present; a from below the first LSN
// of the oldest generation present is an error matching
// ErrMissingGeneration. An error returned by fn stops the iteration and is
// returned as it is.
func (l *Log) ReadFrom(ctx context.Context, from LSN, fn func(Record) error) error {
	files, gens, prev, err := l.openForRead(from)
	if err != nil {
		return err
	}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for i, g := range gens {
		if err := ctx.Err(); err != nil {
			return err
		}
		buf := make([]byte, g.Size)
		if _, err := files[i].ReadAt(buf, 0); err != nil {
			if err == io.EOF {
				return corrupt(g.Path, g.Gen, g.Size, ErrCorrupt, "file shorter than its durable size")
			}
			return fmt.Errorf("read log generation %d: %w", g.Gen, err)
		}
		sc, err := scanGeneration(ctx, g.Path, g.Gen, buf, l.sig, false, from, fn)
		if err != nil {
			return err
		}
		if err := checkChain(&sc.info, prev); err != nil {
			return err
		}
		if sc.info.Checksum != g.Checksum || sc.info.LastLSN != g.LastLSN {
			return corrupt(g.Path, g.Gen, HeaderSize, ErrCorrupt, "records changed since they were written or verified")
		}
		prev = &sc.info
	}
	return nil
}

// openForRead picks the generations holding LSNs >= from and opens them, so
// that a concurrent DeleteThrough cannot take them away mid-read. It returns
// the generation before the first one picked, if present, to check the chain
// against.
func (l *Log) openForRead(from LSN) (files []*os.File, gens []GenInfo, prev *GenInfo, err error) {
	l.delMu.Lock()
	defer l.delMu.Unlock()
	l.mu.Lock()
	if l.closed || l.closing {
		l.mu.Unlock()
		return nil, nil, nil, ErrClosed
	}
	all := slices.Clone(l.gens)
	l.mu.Unlock()
	start := 0
	if from != 0 {
		if from < all[0].BaseLSN {
			return nil, nil, nil, corrupt(all[0].Path, all[0].Gen, 0, ErrMissingGeneration,
				"records from LSN %d asked for, oldest generation starts at LSN %d", from, all[0].BaseLSN)
		}
		for i := range all {
			if all[i].BaseLSN <= from {
				start = i
			}
		}
	}
	if start > 0 {
		p := all[start-1]
		prev = &p
	}
	gens = all[start:]
	for _, g := range gens {
		f, err := os.Open(g.Path)
		if err != nil {
			for _, f := range files {
				f.Close()
			}
			return nil, nil, nil, fmt.Errorf("open log generation %d for reading: %w", g.Gen, err)
		}
		files = append(files, f)
	}
	return files, gens, prev, nil
}

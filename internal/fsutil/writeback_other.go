//go:build !linux

package fsutil

import (
	"errors"
	"os"
)

var errNoWriteback = errors.New("no sync_file_range on this system")

func startWriteback(*os.File, int64, int64) error { return errNoWriteback }

func waitWriteback(*os.File, int64, int64) error { return errNoWriteback }

func setDirect(*os.File, bool) error { return errNoWriteback }

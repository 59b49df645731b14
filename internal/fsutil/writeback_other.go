//go:build !linux

package fsutil

import (
	"errors"
	"os"
)

var errUnsupported = errors.New("not supported on this system")

func startWriteback(*os.File, int64, int64) error { return errUnsupported }

func waitWriteback(*os.File, int64, int64) error { return errUnsupported }

func setDirect(*os.File, bool) error { return errUnsupported }

func willNeed(*os.File, int64, int64) error { return errUnsupported }

package certadm

import (
	"fmt"

	certsrvv1 "github.com/certsrv/certsrv/proto/certsrv/v1"
)

// FileType is the one-character type tag certbcli.h puts in front of every
// name in a backup file list.
type FileType byte

// The tags, with the values of certbcli.h.
const (
	// FileDynamic marks a dynamic file (a CA certificate or CRL under the
	// server's publish directory). certbcli.h lists dynamic files without a
	// tag; this package uses 0 and File.String omits it.
	FileDynamic FileType = 0
	// FileDatabase is CSBFT_CERTSERVER_DATABASE, 'D' (0x44): a database file.
	FileDatabase FileType = 'D'
	// FileLog is CSBFT_LOG, '!' (0x21): a transaction log generation.
	FileLog FileType = '!'
	// FileLogDirectory is CSBFT_LOG_DIR (0x82): the log directory in a
	// restore map.
	FileLogDirectory FileType = 0x82
	// FileCheckpointDirectory is CSBFT_CHECKPOINT_DIR (0x83): the checkpoint
	// directory in a restore map.
	FileCheckpointDirectory FileType = 0x83
)

// String names the type in words ("database", "log", "log directory",
// "checkpoint directory", "dynamic"), or "type 0xNN" for a tag this package
// does not know.
func (t FileType) String() string {
	switch t {
	case FileDynamic:
		return "dynamic"
	case FileDatabase:
		return "database"
	case FileLog:
		return "log"
	case FileLogDirectory:
		return "log directory"
	case FileCheckpointDirectory:
		return "checkpoint directory"
	}
	return fmt.Sprintf("type 0x%02X", byte(t))
}

// File is one entry of a backup file list or restore map.
type File struct {
	// Type is the tag.
	Type FileType
	// Name is the name exactly as the server listed it: for database and
	// log files and restore-map entries an absolute path on the server (the
	// form certbcli.h gives as a UNC path), for dynamic files a file name
	// under the publish directory. Pass it to OpenFile unchanged; a backup
	// program stores the file under filepath.Base(Name).
	Name string
	// Size is the file's size in bytes when the server knows it at listing
	// time, else 0. OpenFile reports the authoritative size.
	Size int64
	// URL is where a dynamic file can be fetched over HTTP; empty for other
	// types.
	URL string
}

// String returns the tagged certbcli.h form: the tag character followed by
// the name, as in "Dca.db" or "!ca00000003.log". The tags 0x82 and 0x83 are
// written as the code points U+0082 and U+0083 (certbcli.h lists are wide
// strings, so this is the same character). A dynamic file has no tag, so
// its String is its name.
func (f File) String() string {
	if f.Type == FileDynamic {
		return f.Name
	}
	return string(rune(f.Type)) + f.Name
}

// filesFromWire converts a wire file list. A tag that does not fit in one
// byte is reported as ErrInvalidData.
func filesFromWire(op string, l *certsrvv1.FileList) ([]File, error) {
	out := make([]File, 0, len(l.GetFiles()))
	for _, f := range l.GetFiles() {
		if f.GetTag() > 0xFF {
			return nil, newError(condInvalidData, op, "file %q has tag 0x%X, which is not a certbcli.h tag", f.GetName(), f.GetTag())
		}
		out = append(out, File{Type: FileType(f.GetTag()), Name: f.GetName(), Size: f.GetSize(), URL: f.GetUrl()})
	}
	return out, nil
}

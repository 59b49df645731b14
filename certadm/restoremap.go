package certadm

import (
	"io"
	"path"
	"strings"

	"github.com/certsrv/certsrv/internal/backupset"
	"github.com/certsrv/certsrv/internal/wal"
)

// Generation returns the generation number of a log file (FileLog) from
// its name, whose last element is <log base><8 hexadecimal digits>.log
// ("ca0000000A.log" is generation 10): the numbers RestoreContext.Register
// takes as lowLog and highLog. It returns false for any other file.
func (f File) Generation() (uint32, bool) {
	if f.Type != FileLog {
		return 0, false
	}
	name := path.Base(strings.ReplaceAll(f.Name, `\`, "/"))
	if len(name) < len("00000000.log") {
		return 0, false
	}
	// The base is whatever precedes the eight digits.
	gen, ok := wal.ParseFileName(name[:len(name)-len("00000000.log")], name)
	return gen, ok && gen != 0
}

// RestoreMapFile is the name a backup set gives the restore map inside
// its DataBase/ directory: certbkxp.dat, as AD CS names it.
const RestoreMapFile = "certbkxp.dat"

// WriteRestoreMap writes the restore map DatabaseLocations returned, in
// the file form `certsrv restore` and `certadm verify` read from a backup
// set's DataBase/certbkxp.dat (docs/formats.md): a version line, one line
// per entry (tag in hexadecimal, absolute path), and a SHA-256 of the
// lines before it. The map must hold exactly one database, one log
// directory and one checkpoint directory entry, with absolute paths;
// otherwise WriteRestoreMap fails with ErrInvalidArg and writes nothing.
func WriteRestoreMap(w io.Writer, locations []File) error {
	const op = "write restore map"
	var m backupset.RestoreMap
	for _, f := range locations {
		m.Entries = append(m.Entries, backupset.RestoreEntry{Tag: byte(f.Type), Path: f.Name})
	}
	b, err := m.Marshal()
	if err != nil {
		return newError(condInvalidArg, op, "%w", err)
	}
	if _, err := w.Write(b); err != nil {
		return newError(condUnexpected, op, "%w", err)
	}
	return nil
}

// ReadRestoreMap reads a restore map in the file form WriteRestoreMap
// writes and returns its entries (FileDatabase, FileLogDirectory,
// FileCheckpointDirectory) in the file's order. A damaged or edited file
// (bad version line, checksum, tag or path) fails with ErrInvalidData.
func ReadRestoreMap(r io.Reader) ([]File, error) {
	const op = "read restore map"
	b, err := io.ReadAll(io.LimitReader(r, 1<<20))
	if err != nil {
		return nil, newError(condUnexpected, op, "%w", err)
	}
	m, err := backupset.ParseRestoreMap(b)
	if err != nil {
		return nil, newError(condInvalidData, op, "%w", err)
	}
	out := make([]File, len(m.Entries))
	for i, e := range m.Entries {
		out[i] = File{Type: FileType(e.Tag), Name: e.Path}
	}
	return out, nil
}

// RestoreMapEntryFor returns the RestoreMapEntry for the database of a
// restore map (as ReadRestoreMap returns it) restored to newPath, for
// RestoreContext.Register. It fails with ErrInvalidArg when the map has no
// database entry.
func RestoreMapEntryFor(locations []File, newPath string) (RestoreMapEntry, error) {
	for _, f := range locations {
		if f.Type == FileDatabase {
			return RestoreMapEntry{DatabaseName: f.Name, NewDatabaseName: newPath}, nil
		}
	}
	return RestoreMapEntry{}, newError(condInvalidArg, "restore map", "no database entry among its %d entries", len(locations))
}

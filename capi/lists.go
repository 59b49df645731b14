package main

import (
	"fmt"
	"strings"
	"unicode/utf16"

	"github.com/certsrv/certsrv/certadm"
)

// maxString is the longest string, in UTF-16 code units, an export accepts
// (CERTBCLI_MAX_STRING in certbcli.h).
const maxString = 32767

// decodeUTF16 converts the code units of a string passed in to Go. It fails
// on an unpaired surrogate, which has no UTF-8 form.
func decodeUTF16(units []uint16) (string, error) {
	for i := 0; i < len(units); i++ {
		u := units[i]
		switch {
		case utf16.IsSurrogate(rune(u)) && u < 0xDC00:
			if i+1 == len(units) || units[i+1] < 0xDC00 || units[i+1] > 0xDFFF {
				return "", fmt.Errorf("unpaired high surrogate 0x%04X at unit %d", u, i)
			}
			i++
		case utf16.IsSurrogate(rune(u)):
			return "", fmt.Errorf("unpaired low surrogate 0x%04X at unit %d", u, i)
		}
	}
	return string(utf16.Decode(units)), nil
}

// entryString is the list entry certbcli.h gives for f: the tag and the
// name for database files, logs and restore-map entries (File.String), and
// the URL, or the name when the server gave no URL, for dynamic files.
func entryString(f certadm.File) string {
	if f.Type == certadm.FileDynamic {
		if f.URL != "" {
			return f.URL
		}
		return f.Name
	}
	return f.String()
}

// encodeList returns the multi-string of files as UTF-16 code units: each
// entry followed by 0, then a final 0. An entry holding U+0000 would end the
// list early for a C reader, so it is refused.
func encodeList(files []certadm.File) ([]uint16, error) {
	out := make([]uint16, 0, 64)
	for _, f := range files {
		s := entryString(f)
		if strings.ContainsRune(s, 0) {
			return nil, fmt.Errorf("list entry %q contains U+0000", s)
		}
		out = append(out, utf16.Encode([]rune(s))...)
		out = append(out, 0)
	}
	return append(out, 0), nil
}

// serverName applies the certbcli.h server-name rules to the name a caller
// passed: leading backslashes (a Windows "\\host" form) are dropped.
func serverName(name string) string {
	return strings.TrimLeft(name, `\`)
}

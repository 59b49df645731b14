package certadm

import (
	"errors"
	"testing"

	certsrvv1 "github.com/certsrv/certsrv/proto/certsrv/v1"
)

func TestFileStringGivesTaggedForm(t *testing.T) {
	cases := []struct {
		f    File
		want string
		word string
	}{
		{File{Type: FileDatabase, Name: "Example CA.db"}, "DExample CA.db", "database"},
		{File{Type: FileLog, Name: "ca00000003.log"}, "!ca00000003.log", "log"},
		{File{Type: FileLogDirectory, Name: "/var/lib/certsrv/log"}, "\u0082/var/lib/certsrv/log", "log directory"},
		{File{Type: FileCheckpointDirectory, Name: "/var/lib/certsrv/sys"}, "\u0083/var/lib/certsrv/sys", "checkpoint directory"},
		{File{Type: FileDynamic, Name: "Example CA.crl", URL: "http://127.0.0.1:8080/CertEnroll/Example%20CA.crl"}, "Example CA.crl", "dynamic"},
	}
	for _, c := range cases {
		if got := c.f.String(); got != c.want {
			t.Errorf("%v: String() = %q, want %q", c.f.Type, got, c.want)
		}
		if got := c.f.Type.String(); got != c.word {
			t.Errorf("FileType(0x%02X).String() = %q, want %q", byte(c.f.Type), got, c.word)
		}
		if c.f.Type != FileDynamic && []rune(c.f.String())[0] != rune(c.f.Type) {
			t.Errorf("first rune of %q is not the tag 0x%02X", c.f.String(), byte(c.f.Type))
		}
	}
	if got := FileType(0x0F).String(); got != "type 0x0F" {
		t.Errorf("unknown tag: %q", got)
	}
}

func TestTagValuesAreCertbcli(t *testing.T) {
	if FileDatabase != 0x44 || FileLog != 0x21 || FileLogDirectory != 0x82 || FileCheckpointDirectory != 0x83 || FileDynamic != 0 {
		t.Fatal("tag values differ from certbcli.h")
	}
	if BackupFull != 1 || BackupLogsOnly != 2 || ControlShutdown != 1 {
		t.Fatal("type or control values differ from certbcli.h")
	}
}

func TestFilesFromWire(t *testing.T) {
	got, err := filesFromWire("list", &certsrvv1.FileList{Files: []*certsrvv1.File{
		{Tag: 0x44, Name: "a.db", Size: 4096},
		{Tag: 0x21, Name: "ca00000001.log", Size: 100},
		{Tag: 0, Name: "a.crt", Url: "http://x/a.crt"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := []File{{FileDatabase, "a.db", 4096, ""}, {FileLog, "ca00000001.log", 100, ""}, {FileDynamic, "a.crt", 0, "http://x/a.crt"}}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("file %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	_, err = filesFromWire("list", &certsrvv1.FileList{Files: []*certsrvv1.File{{Tag: 0x144, Name: "x"}}})
	if !errors.Is(err, ErrInvalidData) {
		t.Fatalf("wide tag: %v", err)
	}
}

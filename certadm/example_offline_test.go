package certadm_test

import (
	"errors"
	"fmt"

	"github.com/certsrv/certsrv/certadm"
)

func ExampleFile_String() {
	files := []certadm.File{
		{Type: certadm.FileDatabase, Name: "Example CA.db"},
		{Type: certadm.FileLog, Name: "ca0000000A.log"},
		{Type: certadm.FileLogDirectory, Name: "/srv/certsrv-data/log"},
	}
	for _, f := range files {
		fmt.Printf("%q (%s)\n", f.String(), f.Type)
	}
	// Output:
	// "DExample CA.db" (database)
	// "!ca0000000A.log" (log)
	// "\u0082/srv/certsrv-data/log" (log directory)
}

func ExampleHRESULT() {
	var err error = fmt.Errorf("nightly backup: %w", certadm.ErrInvalidBackupSequence)
	fmt.Printf("0x%08X\n", certadm.HRESULT(err))
	fmt.Printf("0x%08X\n", certadm.HRESULT(nil))
	fmt.Println(errors.Is(err, certadm.ErrInvalidBackupSequence))
	// Output:
	// 0xC8000209
	// 0x00000000
	// true
}

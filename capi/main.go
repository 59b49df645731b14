// Command capi is libcertadm.so, the certbcli.h backup and restore
// functions for C programs, built with
//
//	go build -buildmode=c-shared -o build/libcertadm.so ./capi
//
// (or `make -C capi`, which also builds the C example). The public header is
// include/certbcli.h; docs/c-integration.md is the integrator's guide. Every
// export is a thin layer over the certadm Go library: it checks its
// arguments, converts UTF-16 strings, calls the matching certadm function
// with a bounded context, and maps the error to its certbcli.h HRESULT with
// certadm.HRESULT.
//
// # Handles
//
// An HCSBC is never a Go pointer (cgo forbids handing those to C): it is a
// small integer, cast to void *, that names an entry of a table guarded by a
// mutex. Numbers start at 1 and are never reused within a process, so a
// handle used after CertSrvBackupEnd or CertSrvRestoreEnd is reliably
// E_HANDLE rather than another session's. Each entry has its own mutex, so
// calls on one handle are serialized while calls on different handles run
// in parallel.
//
// # The list format
//
// The four list functions return one block of memory allocated with the C
// library's malloc, which CertSrvBackupFree releases with free. The block
// is a sequence of UTF-16 code units in the machine's byte order (little
// endian on every supported platform):
//
//	entry 1 units, 0x0000, entry 2 units, 0x0000, ..., entry n units, 0x0000, 0x0000
//
// An empty list is the single unit 0x0000. Each entry of a backup list or a
// restore map starts with its certbcli.h type tag as one unit ('D' 0x0044,
// '!' 0x0021, 0x0082, 0x0083) followed by the name; dynamic-file entries
// have no tag and hold the file's URL. The size reported in *pcbSize is
// 2 × the number of units, both kinds of 0x0000 included. Names never
// contain U+0000 (the server's lists cannot hold one).
//
// # Tests
//
// capi_test.go builds the library with go build -buildmode=c-shared,
// compiles capi/test/test_certbcli.c and examples/c/backup_scenario.c with
// gcc, runs them against a real server on 127.0.0.1, and runs both under
// valgrind (/usr/bin/valgrind must be installed; the test fails and says
// so otherwise). The normal run takes about a minute on two cores.
package main

func main() {}

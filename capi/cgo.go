package main

/*
#cgo CFLAGS: -I${SRCDIR}/../include
#define CERTBCLI_NO_PROTOTYPES
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "certbcli.h"

// malloc and free are called through these functions, not through cgo's
// C.malloc, which aborts the process when memory runs out instead of
// returning NULL.
static void *certadm_malloc(size_t n) { return malloc(n); }
static void certadm_free(void *p) { free(p); }

// A handle is an integer stored in a pointer-typed C variable; the cast
// happens here so that Go never holds a pointer value that is not one.
static void certadm_set_handle(HCSBC *p, uintptr_t v) { *p = (HCSBC)v; }

// The environment is read through getenv at each call, so setenv in the
// calling program takes effect (the Go runtime's own copy of the
// environment is taken once, when the library is loaded).
static const char *certadm_env_creds(void) { return getenv("CERTADM_CREDS"); }
static const char *certadm_env_server(void) { return getenv("CERTADM_SERVER"); }
static const char *certadm_env_trace(void) { return getenv("CERTBCLI_TRACE"); }

static void certadm_trace(const char *msg) { fprintf(stderr, "%s\n", msg); fflush(stderr); }
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// goHR converts an HRESULT to the C type.
func goHR(hr uint32) C.HRESULT { return C.HRESULT(int32(hr)) }

// wstring reads the zero-terminated UTF-16 string at p, which must not be
// nil, and converts it. It reads at most maxString+1 units, so an
// unterminated buffer fails with errBadString rather than running on.
func wstring(p *C.WCHAR) (string, error) {
	base := unsafe.Pointer(p)
	for n := 0; n <= maxString; n++ {
		if *(*uint16)(unsafe.Add(base, 2*n)) != 0 {
			continue
		}
		s, err := decodeUTF16(unsafe.Slice((*uint16)(base), n))
		if err != nil {
			return "", fmt.Errorf("%w: %v", errBadString, err)
		}
		return s, nil
	}
	return "", fmt.Errorf("%w: longer than %d UTF-16 units", errBadString, maxString)
}

// setHandle stores handle number h in *p.
func setHandle(p *C.HCSBC, h uintptr) { C.certadm_set_handle(p, C.uintptr_t(h)) }

// cList copies a multi-string into memory from malloc and returns it with
// its size in bytes. The caller hands it to C, which frees it with
// CertSrvBackupFree.
func cList(units []uint16) (*C.WCHAR, C.DWORD, error) {
	size := 2 * len(units)
	if size > 1<<31 {
		return nil, 0, fmt.Errorf("%w: list of %d bytes", errOutOfMemory, size)
	}
	p := C.certadm_malloc(C.size_t(size))
	if p == nil {
		return nil, 0, fmt.Errorf("%w: list of %d bytes", errOutOfMemory, size)
	}
	copy(unsafe.Slice((*uint16)(p), len(units)), units)
	return (*C.WCHAR)(p), C.DWORD(size), nil
}

// cFree releases memory from cList; nil does nothing.
func cFree(p unsafe.Pointer) {
	if p != nil {
		C.certadm_free(p)
	}
}

// getenv returns the value of an environment variable read by one of the
// accessors above, and whether it is set.
func getenv(f func() *C.char) (string, bool) {
	p := f()
	if p == nil {
		return "", false
	}
	return C.GoString(p), true
}

func envCreds() (string, bool) {
	return getenv(func() *C.char { return C.certadm_env_creds() })
}

func envServer() (string, bool) {
	return getenv(func() *C.char { return C.certadm_env_server() })
}

// trace writes msg to standard error when CERTBCLI_TRACE is set and not
// empty.
func trace(msg string) {
	if v, ok := getenv(func() *C.char { return C.certadm_env_trace() }); !ok || v == "" {
		return
	}
	cs := C.CString(msg)
	defer C.free(unsafe.Pointer(cs))
	C.certadm_trace(cs)
}

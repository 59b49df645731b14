/*
 * harness.h — what the files of test_certbcli share: the check macros, the
 * table of the library's functions, and list and string helpers. The
 * definitions are in test_certbcli.c.
 */
#ifndef CERTSRV_TEST_HARNESS_H
#define CERTSRV_TEST_HARNESS_H

#include <stdint.h>

#include "certbcli.h"

/* check prints "ok - ..." or "not ok - ... (line N)" and counts it. */
void check(int line, int ok, const char *format, ...);

#define CHECK(cond, ...) check(__LINE__, (cond), __VA_ARGS__)
/* CHECK_HR compares an HRESULT with the one expected and names both. */
#define CHECK_HR(hr, want, what)                                                                      \
    do {                                                                                              \
        HRESULT got_ = (hr);                                                                          \
        check(__LINE__, got_ == (want), "%s: 0x%08X (want 0x%08X %s)", (what), (unsigned)got_,        \
              (unsigned)(want), #want);                                                              \
    } while (0)

/* covers records that a check exercised an export. */
void covers(const char *name);

/* The library's functions, found with dlsym. */
struct api {
    void *lib;
    PFNCERTSRVISSERVERONLINEW IsServerOnline;
    PFNCERTSRVBACKUPPREPAREW BackupPrepare;
    PFNCERTSRVRESTOREGETDATABASELOCATIONSW RestoreGetDatabaseLocations;
    PFNCERTSRVBACKUPGETDATABASENAMESW BackupGetDatabaseNames;
    PFNCERTSRVBACKUPOPENFILEW BackupOpenFile;
    PFNCERTSRVBACKUPREAD BackupRead;
    PFNCERTSRVBACKUPCLOSE BackupClose;
    PFNCERTSRVBACKUPGETBACKUPLOGSW BackupGetBackupLogs;
    PFNCERTSRVBACKUPTRUNCATELOGS BackupTruncateLogs;
    PFNCERTSRVBACKUPGETDYNAMICFILELISTW BackupGetDynamicFileList;
    PFNCERTSRVBACKUPEND BackupEnd;
    PFNCERTSRVBACKUPFREE BackupFree;
    PFNCERTSRVRESTOREPREPAREW RestorePrepare;
    PFNCERTSRVRESTOREREGISTERW RestoreRegister;
    PFNCERTSRVRESTOREREGISTERTHROUGHFILE RestoreRegisterThroughFile;
    PFNCERTSRVRESTOREREGISTERCOMPLETE RestoreRegisterComplete;
    PFNCERTSRVRESTOREEND RestoreEnd;
    PFNCERTSRVSERVERCONTROLW ServerControl;
};
extern struct api api;

/* list_count returns the number of entries of a multi-string and checks
 * that cb, the size the library reported, is exactly its size in bytes. */
int list_count(const WCHAR *list, DWORD cb, const char *what);
/* list_entry returns entry i of a multi-string. */
const WCHAR *list_entry(const WCHAR *list, int i);
/* W converts UTF-8 to a UTF-16 string from malloc, exiting on bad input. */
WCHAR *W(const char *s);

/* test_restore exercises the restore functions (test_restore.c). */
void test_restore(const char *live, const char *stopped);

#endif /* CERTSRV_TEST_HARNESS_H */

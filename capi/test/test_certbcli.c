/*
 * test_certbcli — exercises every export of libcertadm.so against a live
 * certsrv server, including the error paths: NULL pointers, bad and ended
 * handles, calls out of order, a buffer too small, unknown names and
 * refused credentials. capi_test.go builds it, starts the server and reads
 * its output.
 *
 * Usage:
 *   test_certbcli LIB SERVER DEAD_SERVER READER_CREDS LIVE_DATA STOPPED_DATA
 *       LIB           path of libcertadm.so
 *       SERVER        host:port of a running CA without any backup yet;
 *                     CERTADM_CREDS names an Operator credential for it
 *       DEAD_SERVER   host:port where nothing listens
 *       READER_CREDS  a credential of that CA without the Operator role
 *       LIVE_DATA     the running CA's data directory
 *       STOPPED_DATA  the data directory of a CA that is not running
 *   test_certbcli --leak-probe LIB SERVER free|leak
 *       gets one list and frees it (free) or drops it (leak), for the
 *       valgrind test.
 *   test_certbcli --suspended LIB SERVER
 *       checks IsServerOnline and BackupPrepare against a CA suspended for
 *       a restore.
 *
 * The restore checks are in test_restore.c; harness.h has what both share.
 *
 * Output: one line per check, "ok - ..." or "not ok - ... (line N)"; one
 * "covers NAME" line per export a check exercised; and finally
 * "N passed, M failed". Exit status 0 when nothing failed.
 */
#define _POSIX_C_SOURCE 200809L

#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "certbcli.h"
#include "harness.h"
#include "sha256.h"
#include "utf16.h"

/* ---- A small test harness ------------------------------------------------ */

static int passed, failed;

void check(int line, int ok, const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    fputs(ok ? "ok - " : "not ok - ", stdout);
    vprintf(format, ap);
    if (!ok)
        printf(" (line %d)", line);
    putchar('\n');
    fflush(stdout);
    va_end(ap);
    if (ok)
        passed++;
    else
        failed++;
}

void covers(const char *name) { printf("covers %s\n", name); }

/* ---- The library ----------------------------------------------------------- */

struct api api;

static void *sym(const char *name)
{
    void *p = dlsym(api.lib, name);
    CHECK(p != NULL, "dlsym %s", name);
    covers(name);
    return p;
}

static int load(const char *path)
{
    int failed_before = failed;
    api.lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    CHECK(api.lib != NULL, "dlopen %s: %s", path, api.lib ? "loaded" : dlerror());
    if (api.lib == NULL)
        return -1;
    api.IsServerOnline = (PFNCERTSRVISSERVERONLINEW)sym("CertSrvIsServerOnlineW");
    api.BackupPrepare = (PFNCERTSRVBACKUPPREPAREW)sym("CertSrvBackupPrepareW");
    api.RestoreGetDatabaseLocations = (PFNCERTSRVRESTOREGETDATABASELOCATIONSW)sym("CertSrvRestoreGetDatabaseLocationsW");
    api.BackupGetDatabaseNames = (PFNCERTSRVBACKUPGETDATABASENAMESW)sym("CertSrvBackupGetDatabaseNamesW");
    api.BackupOpenFile = (PFNCERTSRVBACKUPOPENFILEW)sym("CertSrvBackupOpenFileW");
    api.BackupRead = (PFNCERTSRVBACKUPREAD)sym("CertSrvBackupRead");
    api.BackupClose = (PFNCERTSRVBACKUPCLOSE)sym("CertSrvBackupClose");
    api.BackupGetBackupLogs = (PFNCERTSRVBACKUPGETBACKUPLOGSW)sym("CertSrvBackupGetBackupLogsW");
    api.BackupTruncateLogs = (PFNCERTSRVBACKUPTRUNCATELOGS)sym("CertSrvBackupTruncateLogs");
    api.BackupGetDynamicFileList = (PFNCERTSRVBACKUPGETDYNAMICFILELISTW)sym("CertSrvBackupGetDynamicFileListW");
    api.BackupEnd = (PFNCERTSRVBACKUPEND)sym("CertSrvBackupEnd");
    api.BackupFree = (PFNCERTSRVBACKUPFREE)sym("CertSrvBackupFree");
    api.RestorePrepare = (PFNCERTSRVRESTOREPREPAREW)sym("CertSrvRestorePrepareW");
    api.RestoreRegister = (PFNCERTSRVRESTOREREGISTERW)sym("CertSrvRestoreRegisterW");
    api.RestoreRegisterThroughFile = (PFNCERTSRVRESTOREREGISTERTHROUGHFILE)sym("CertSrvRestoreRegisterThroughFile");
    api.RestoreRegisterComplete = (PFNCERTSRVRESTOREREGISTERCOMPLETE)sym("CertSrvRestoreRegisterComplete");
    api.RestoreEnd = (PFNCERTSRVRESTOREEND)sym("CertSrvRestoreEnd");
    api.ServerControl = (PFNCERTSRVSERVERCONTROLW)sym("CertSrvServerControlW");
    /* An unknown name is not there: dlsym finds nothing. */
    CHECK(dlsym(api.lib, "CertSrvBackupGetAttachmentInfoW") == NULL, "dlsym of an unknown name finds nothing");
    return failed == failed_before ? 0 : -1;
}

/* ---- Lists ---------------------------------------------------------------------- */

/* list_count returns the number of entries of a multi-string and checks
 * that cb, the size the library reported, is exactly its size in bytes. */
int list_count(const WCHAR *list, DWORD cb, const char *what)
{
    int n = 0;
    const WCHAR *p = list;
    while (*p != 0) {
        p += wstr_len(p) + 1;
        n++;
    }
    size_t bytes = (size_t)(p - list + 1) * sizeof(WCHAR);
    CHECK(bytes == cb, "%s: size %u bytes matches the list's %zu bytes", what, (unsigned)cb, bytes);
    return n;
}

/* list_entry returns entry i of a multi-string. */
const WCHAR *list_entry(const WCHAR *list, int i)
{
    const WCHAR *p = list;
    while (i-- > 0)
        p += wstr_len(p) + 1;
    return p;
}

/* ---- Reading files ---------------------------------------------------------------- */

/* read_all reads the open file to its end with a buffer of bufsize bytes,
 * checks the total against size, and stores the first bytes in head. */
static int64_t read_all(HCSBC hbc, int64_t size, DWORD bufsize, unsigned char *head, size_t headlen)
{
    unsigned char *buf = malloc(bufsize);
    int64_t total = 0;
    HRESULT hr = S_OK;
    for (;;) {
        DWORD got = 12345;
        hr = api.BackupRead(hbc, buf, bufsize, &got);
        if (FAILED(hr) || got == 0)
            break;
        if (got > bufsize)
            break;
        if (total < (int64_t)headlen)
            memcpy(head + total, buf, (size_t)(headlen - (size_t)total) < got ? headlen - (size_t)total : got);
        total += got;
        if (got < bufsize && total != size)
            break; /* a short read must mean the end */
    }
    free(buf);
    CHECK(SUCCEEDED(hr), "read to the end: 0x%08X", (unsigned)hr);
    CHECK(total == size, "read %lld bytes of a file of %lld", (long long)total, (long long)size);
    return total;
}

/* copy_listed opens, reads and closes every file of a list. */
static void copy_listed(HCSBC hbc, const WCHAR *list, CSBFT tag, const char *what)
{
    for (const WCHAR *p = list; *p != 0; p += wstr_len(p) + 1) {
        char *name = wstr_to_utf8(p + 1);
        CHECK(p[0] == tag, "%s entry %s has tag 0x%02X", what, name, (unsigned)p[0]);
        LARGE_INTEGER size;
        size.QuadPart = -1;
        HRESULT hr = api.BackupOpenFile(hbc, p + 1, 65536, &size);
        CHECK_HR(hr, S_OK, "open listed file");
        CHECK(size.QuadPart > 0, "%s has size %lld", name, (long long)size.QuadPart);
        unsigned char head[16];
        read_all(hbc, size.QuadPart, 65536, head, sizeof head);
        CHECK_HR(api.BackupClose(hbc), S_OK, "close listed file");
        free(name);
    }
}

/* ---- Threads ------------------------------------------------------------------------- */

struct thread_arg {
    HCSBC hbc;
    HRESULT hr;
    int entries;
};

static void *locations_thread(void *p)
{
    struct thread_arg *a = p;
    WCHAR *list = NULL;
    DWORD cb = 0;
    a->hr = api.RestoreGetDatabaseLocations(a->hbc, &list, &cb);
    a->entries = 0;
    for (const WCHAR *q = list; q != NULL && *q != 0; q += wstr_len(q) + 1)
        a->entries++;
    api.BackupFree(list);
    return NULL;
}

/* ---- The tests ------------------------------------------------------------------------ */

WCHAR *W(const char *s)
{
    WCHAR *w = wstr_from_utf8(s);
    if (w == NULL) {
        fprintf(stderr, "bad UTF-8: %s\n", s);
        exit(2);
    }
    return w;
}

static void test_is_server_online(const WCHAR *server, const WCHAR *dead, const char *server8)
{
    BOOL online = 7;
    covers("CertSrvIsServerOnlineW");
    CHECK_HR(api.IsServerOnline(NULL, &online), E_POINTER, "IsServerOnline(NULL name)");
    CHECK(online == FALSE, "online is FALSE after a failure");
    CHECK_HR(api.IsServerOnline(server, NULL), E_POINTER, "IsServerOnline(NULL pfServerOnline)");
    online = FALSE;
    CHECK_HR(api.IsServerOnline(server, &online), S_OK, "IsServerOnline(server)");
    CHECK(online == TRUE, "the server is online");

    char unc[300];
    snprintf(unc, sizeof unc, "\\\\%s", server8);
    WCHAR *wunc = W(unc);
    online = FALSE;
    CHECK_HR(api.IsServerOnline(wunc, &online), S_OK, "IsServerOnline(\\\\host:port)");
    CHECK(online == TRUE, "the \\\\host:port form names the same server");
    free(wunc);

    online = TRUE;
    CHECK_HR(api.IsServerOnline(dead, &online), hrCouldNotConnect, "IsServerOnline(nothing listening)");
    CHECK(online == FALSE, "an unreachable server is not online");
    CHECK_HR(api.IsServerOnline(u"no-port-here", &online), E_INVALIDARG, "IsServerOnline(name without port)");
    const WCHAR unpaired[] = {0xD800, 'x', 0};
    CHECK_HR(api.IsServerOnline(unpaired, &online), E_INVALIDARG, "IsServerOnline(unpaired surrogate)");
    WCHAR *huge = calloc(CERTBCLI_MAX_STRING + 2, sizeof(WCHAR));
    for (int i = 0; i < CERTBCLI_MAX_STRING + 1; i++)
        huge[i] = 'a';
    CHECK_HR(api.IsServerOnline(huge, &online), E_INVALIDARG, "IsServerOnline(string longer than CERTBCLI_MAX_STRING)");
    free(huge);

    /* The empty name means CERTADM_SERVER, read at each call. */
    setenv("CERTADM_SERVER", server8, 1);
    online = FALSE;
    CHECK_HR(api.IsServerOnline(u"", &online), S_OK, "IsServerOnline(\"\") with CERTADM_SERVER set");
    CHECK(online == TRUE, "CERTADM_SERVER names the server");
    unsetenv("CERTADM_SERVER");

    /* Credentials from CERTADM_CREDS, read at each call. */
    char *creds = strdup(getenv("CERTADM_CREDS"));
    setenv("CERTADM_CREDS", "/nonexistent/creds", 1);
    CHECK_HR(api.IsServerOnline(server, &online), CERTBCLI_E_FILE_NOT_FOUND, "IsServerOnline with CERTADM_CREDS naming no directory");
    unsetenv("CERTADM_CREDS");
    CHECK_HR(api.IsServerOnline(server, &online), CERTBCLI_E_FILE_NOT_FOUND, "IsServerOnline without CERTADM_CREDS");
    setenv("CERTADM_CREDS", creds, 1);
    free(creds);
    CHECK_HR(api.IsServerOnline(server, &online), S_OK, "IsServerOnline with CERTADM_CREDS restored");
}

static void test_prepare_errors(const WCHAR *server, const char *reader)
{
    HCSBC h = (HCSBC)1;
    covers("CertSrvBackupPrepareW");
    CHECK_HR(api.BackupPrepare(server, 0, CSBACKUP_TYPE_FULL, NULL), E_POINTER, "BackupPrepare(NULL phbc)");
    CHECK_HR(api.BackupPrepare(NULL, 0, CSBACKUP_TYPE_FULL, &h), E_POINTER, "BackupPrepare(NULL name)");
    CHECK(h == NULL, "*phbc is NULL after a failure");
    CHECK_HR(api.BackupPrepare(server, 0, 0, &h), E_INVALIDARG, "BackupPrepare(flags 0)");
    CHECK_HR(api.BackupPrepare(server, 0, CSBACKUP_TYPE_MASK, &h), E_INVALIDARG, "BackupPrepare(flags 3)");
    CHECK_HR(api.BackupPrepare(server, 0, CSBACKUP_DISABLE_INCREMENTAL, &h), E_INVALIDARG, "BackupPrepare(CSBACKUP_DISABLE_INCREMENTAL)");
    CHECK_HR(api.BackupPrepare(server, 0, CSBACKUP_TYPE_LOGS_ONLY, &h), hrFullBackupNotTaken, "BackupPrepare(LOGS_ONLY) before any full backup");
    CHECK(h == NULL, "no handle after hrFullBackupNotTaken");

    char *creds = strdup(getenv("CERTADM_CREDS"));
    setenv("CERTADM_CREDS", reader, 1);
    CHECK_HR(api.BackupPrepare(server, 0, CSBACKUP_TYPE_FULL, &h), E_ACCESSDENIED, "BackupPrepare without the Operator role");
    CHECK_HR(api.ServerControl(server, CSCONTROL_SHUTDOWN, NULL, NULL), E_ACCESSDENIED, "ServerControl without the Operator role");
    setenv("CERTADM_CREDS", creds, 1);
    free(creds);
}

static void test_bad_handles(HCSBC live_restore_or_null)
{
    HCSBC bad[] = {NULL, (HCSBC)(uintptr_t)0x7fff0000u};
    WCHAR *list = (WCHAR *)1;
    DWORD cb = 99;
    unsigned char buf[8];
    LARGE_INTEGER size;
    CSEDB_RSTMAPW map = {u"/a/x.db", u"/b/x.db"};
    for (int i = 0; i < 2; i++) {
        HCSBC h = bad[i];
        const char *which = i == 0 ? "NULL handle" : "unknown handle";
        list = (WCHAR *)1;
        cb = 99;
        CHECK_HR(api.RestoreGetDatabaseLocations(h, &list, &cb), E_HANDLE, which);
        CHECK(list == NULL && cb == 0, "out-parameters cleared on E_HANDLE");
        CHECK_HR(api.BackupGetDatabaseNames(h, &list, &cb), E_HANDLE, which);
        CHECK_HR(api.BackupGetBackupLogs(h, &list, &cb), E_HANDLE, which);
        CHECK_HR(api.BackupGetDynamicFileList(h, &list, &cb), E_HANDLE, which);
        CHECK_HR(api.BackupOpenFile(h, u"/x", 0, &size), E_HANDLE, which);
        CHECK_HR(api.BackupRead(h, buf, sizeof buf, &cb), E_HANDLE, which);
        CHECK_HR(api.BackupClose(h), E_HANDLE, which);
        CHECK_HR(api.BackupTruncateLogs(h), E_HANDLE, which);
        CHECK_HR(api.BackupEnd(h), E_HANDLE, which);
        CHECK_HR(api.RestoreRegister(h, u"/c", u"/l", &map, 1, u"/b", 1, 2), E_HANDLE, which);
        CHECK_HR(api.RestoreRegisterThroughFile(h, u"/c", u"/l", &map, 1, u"/b", 1, 2), E_HANDLE, which);
        CHECK_HR(api.RestoreRegisterComplete(h, S_OK), E_HANDLE, which);
        CHECK_HR(api.RestoreEnd(h), E_HANDLE, which);
    }
    (void)live_restore_or_null;
}

/* test_full_backup runs a complete full backup with every check along the
 * way, and returns with the backup recorded. */
static void test_full_backup(const WCHAR *server)
{
    HCSBC h = NULL, other = NULL;
    HRESULT hr = api.BackupPrepare(server, 0, CSBACKUP_TYPE_FULL, &h);
    CHECK_HR(hr, S_OK, "BackupPrepare(FULL)");
    CHECK(h != NULL, "a handle was returned");
    if (FAILED(hr))
        return;
    CHECK_HR(api.BackupPrepare(server, 0, CSBACKUP_TYPE_FULL, &other), hrBackupInProgress, "a second BackupPrepare");

    /* The handle is of the backup kind: restore functions refuse it. */
    CSEDB_RSTMAPW map = {u"/a/x.db", u"/b/x.db"};
    CHECK_HR(api.RestoreRegister(h, u"/c", u"/l", &map, 1, u"/b", 1, 2), E_HANDLE, "RestoreRegister(backup handle)");
    CHECK_HR(api.RestoreEnd(h), E_HANDLE, "RestoreEnd(backup handle)");

    /* Out of order. */
    unsigned char buf[65536];
    DWORD got = 77;
    covers("CertSrvBackupRead");
    covers("CertSrvBackupClose");
    covers("CertSrvBackupTruncateLogs");
    CHECK_HR(api.BackupRead(h, buf, sizeof buf, &got), hrInvalidBackupSequence, "BackupRead before OpenFile");
    CHECK(got == 0, "*pcbRead is 0 after a failure");
    CHECK_HR(api.BackupClose(h), hrInvalidBackupSequence, "BackupClose before OpenFile");
    CHECK_HR(api.BackupTruncateLogs(h), hrInvalidBackupSequence, "BackupTruncateLogs before the files were read");

    /* Step 5: the restore map. */
    WCHAR *locations = NULL;
    DWORD cb = 0;
    covers("CertSrvRestoreGetDatabaseLocationsW");
    CHECK_HR(api.RestoreGetDatabaseLocations(h, NULL, &cb), E_POINTER, "RestoreGetDatabaseLocations(NULL list)");
    locations = (WCHAR *)1;
    CHECK_HR(api.RestoreGetDatabaseLocations(h, &locations, NULL), E_POINTER, "RestoreGetDatabaseLocations(NULL size)");
    CHECK(locations == NULL, "the list pointer is NULL after a failure");
    CHECK_HR(api.RestoreGetDatabaseLocations(h, &locations, &cb), S_OK, "RestoreGetDatabaseLocations");
    int n = list_count(locations, cb, "restore map");
    CHECK(n == 3, "the restore map has 3 entries (%d)", n);
    int seen_d = 0, seen_log = 0, seen_chk = 0;
    for (int i = 0; i < n; i++) {
        const WCHAR *e = list_entry(locations, i);
        seen_d += e[0] == CSBFT_CERTSERVER_DATABASE;
        seen_log += e[0] == CSBFT_LOG_DIR;
        seen_chk += e[0] == CSBFT_CHECKPOINT_DIR;
        CHECK(e[1] == '/', "restore map entry %d is an absolute path", i);
    }
    CHECK(seen_d == 1 && seen_log == 1 && seen_chk == 1, "the restore map holds D, 0x82 and 0x83 once each");

    /* Several threads on one handle. */
    pthread_t th[4];
    struct thread_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i].hbc = h;
        pthread_create(&th[i], NULL, locations_thread, &args[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK(args[i].hr == S_OK && args[i].entries == 3, "thread %d got the restore map: 0x%08X, %d entries", i, (unsigned)args[i].hr, args[i].entries);
    }

    /* Step 6: the database. */
    WCHAR *names = NULL;
    covers("CertSrvBackupGetDatabaseNamesW");
    CHECK_HR(api.BackupGetDatabaseNames(h, NULL, &cb), E_POINTER, "BackupGetDatabaseNames(NULL list)");
    CHECK_HR(api.BackupGetDatabaseNames(h, &names, &cb), S_OK, "BackupGetDatabaseNames");
    n = list_count(names, cb, "database names");
    CHECK(n == 1, "one database file (%d)", n);
    CHECK(names[0] == CSBFT_CERTSERVER_DATABASE, "its tag is 'D' (0x%02X)", (unsigned)names[0]);
    const WCHAR *db = names + 1;
    char *db8 = wstr_to_utf8(db);
    size_t dblen = strlen(db8);
    CHECK(db8[0] == '/' && dblen > 3 && strcmp(db8 + dblen - 3, ".db") == 0, "database name %s is an absolute .db path", db8);

    /* Steps 7 to 9, with every error first. */
    LARGE_INTEGER size;
    size.QuadPart = 99;
    covers("CertSrvBackupOpenFileW");
    CHECK_HR(api.BackupOpenFile(h, NULL, 0, &size), E_POINTER, "BackupOpenFile(NULL name)");
    CHECK(size.QuadPart == 0, "*pliFileSize is 0 after a failure");
    CHECK_HR(api.BackupOpenFile(h, db, 0, NULL), E_POINTER, "BackupOpenFile(NULL size)");
    CHECK_HR(api.BackupOpenFile(h, u"/nonexistent/unknown.db", 0, &size), CERTBCLI_E_FILE_NOT_FOUND, "BackupOpenFile(unknown name)");
    CHECK_HR(api.BackupOpenFile(h, u"relative.db", 0, &size), E_INVALIDARG, "BackupOpenFile(relative name)");
    CHECK_HR(api.BackupOpenFile(h, names, 0, &size), E_INVALIDARG, "BackupOpenFile(name with its tag)");
    CHECK_HR(api.BackupOpenFile(h, db, 0, &size), S_OK, "BackupOpenFile(database)");
    int64_t dbsize = size.QuadPart;
    CHECK(dbsize >= 512, "database size %lld", (long long)dbsize);
    LARGE_INTEGER size2;
    CHECK_HR(api.BackupOpenFile(h, db, 0, &size2), hrAlreadyOpen, "BackupOpenFile while a file is open");

    CHECK_HR(api.BackupRead(h, NULL, 10, &got), E_POINTER, "BackupRead(NULL buffer)");
    CHECK_HR(api.BackupRead(h, buf, 10, NULL), E_POINTER, "BackupRead(NULL pcbRead)");
    CHECK_HR(api.BackupRead(h, buf, 0, &got), CERTBCLI_E_INSUFFICIENT_BUFFER, "BackupRead(cbBuffer 0)");
    /* Small buffers: one byte, then fifteen, must give the SQLite header. */
    unsigned char head[16];
    CHECK_HR(api.BackupRead(h, head, 1, &got), S_OK, "BackupRead(1 byte)");
    CHECK(got == 1 && head[0] == 'S', "one byte read: %u", (unsigned)got);
    CHECK_HR(api.BackupRead(h, head + 1, 15, &got), S_OK, "BackupRead(15 bytes)");
    CHECK(got == 15 && memcmp(head, "SQLite format 3", 16) == 0, "the database starts with the SQLite header");
    int64_t total = 16;
    HRESULT rhr = S_OK;
    while (total < dbsize) {
        rhr = api.BackupRead(h, buf, 4093, &got); /* an odd size that never divides a chunk */
        if (FAILED(rhr) || got == 0)
            break;
        total += got;
    }
    CHECK(SUCCEEDED(rhr) && total == dbsize, "read the database in 4093-byte pieces: %lld of %lld bytes", (long long)total, (long long)dbsize);
    CHECK_HR(api.BackupRead(h, buf, sizeof buf, &got), S_OK, "BackupRead at the end");
    CHECK(got == 0, "nothing more after the end (%u)", (unsigned)got);
    CHECK_HR(api.BackupClose(h), S_OK, "BackupClose");
    CHECK_HR(api.BackupClose(h), hrInvalidBackupSequence, "a second BackupClose");

    /* Step 10: the logs. */
    WCHAR *logs = NULL;
    covers("CertSrvBackupGetBackupLogsW");
    CHECK_HR(api.BackupGetBackupLogs(h, &logs, NULL), E_POINTER, "BackupGetBackupLogs(NULL size)");
    CHECK_HR(api.BackupGetBackupLogs(h, &logs, &cb), S_OK, "BackupGetBackupLogs");
    n = list_count(logs, cb, "backup logs");
    CHECK(n >= 1, "at least one log (%d)", n);
    copy_listed(h, logs, CSBFT_LOG, "log");
    WCHAR *again = NULL;
    CHECK_HR(api.BackupGetBackupLogs(h, &again, &cb), hrInvalidBackupSequence, "a second BackupGetBackupLogs");
    CHECK(again == NULL, "no list after a failure");

    /* Step 11. */
    hr = api.BackupTruncateLogs(h);
    CHECK(hr == S_OK || hr == S_FALSE, "BackupTruncateLogs after every file was read: 0x%08X", (unsigned)hr);

    /* Step 12: dynamic files, without tags, as URLs. */
    WCHAR *dynamic = NULL;
    covers("CertSrvBackupGetDynamicFileListW");
    CHECK_HR(api.BackupGetDynamicFileList(h, NULL, NULL), E_POINTER, "BackupGetDynamicFileList(NULL, NULL)");
    CHECK_HR(api.BackupGetDynamicFileList(h, &dynamic, &cb), S_OK, "BackupGetDynamicFileList");
    n = list_count(dynamic, cb, "dynamic files");
    CHECK(n >= 1, "at least one dynamic file (%d)", n);
    for (int i = 0; i < n; i++) {
        char *url = wstr_to_utf8(list_entry(dynamic, i));
        CHECK(strncmp(url, "http://", 7) == 0, "dynamic file %s is an http URL", url);
        free(url);
    }
    if (n >= 1)
        CHECK_HR(api.BackupOpenFile(h, list_entry(dynamic, 0), 0, &size), E_INVALIDARG, "BackupOpenFile(dynamic file URL)");

    /* Step 14. */
    covers("CertSrvBackupEnd");
    CHECK_HR(api.BackupEnd(h), S_OK, "BackupEnd");
    CHECK_HR(api.BackupEnd(h), E_HANDLE, "a second BackupEnd");
    CHECK_HR(api.BackupGetDatabaseNames(h, &again, &cb), E_HANDLE, "BackupGetDatabaseNames after BackupEnd");

    /* Step 15. */
    covers("CertSrvBackupFree");
    api.BackupFree(NULL);
    api.BackupFree(locations);
    api.BackupFree(names);
    api.BackupFree(logs);
    api.BackupFree(dynamic);
    CHECK(1, "BackupFree of NULL and of every list");
    free(db8);
}

static void test_logs_only(const WCHAR *server)
{
    HCSBC h = NULL;
    HRESULT hr = api.BackupPrepare(server, 0, CSBACKUP_TYPE_LOGS_ONLY, &h);
    CHECK_HR(hr, S_OK, "BackupPrepare(LOGS_ONLY) after a full backup");
    if (FAILED(hr))
        return;
    WCHAR *names = NULL, *logs = NULL;
    DWORD cb = 0;
    CHECK_HR(api.BackupGetDatabaseNames(h, &names, &cb), S_OK, "BackupGetDatabaseNames(LOGS_ONLY)");
    CHECK(names != NULL && names[0] == 0 && cb == sizeof(WCHAR), "an empty list is one zero unit (%u bytes)", (unsigned)cb);
    CHECK_HR(api.BackupGetBackupLogs(h, &logs, &cb), S_OK, "BackupGetBackupLogs(LOGS_ONLY)");
    CHECK(list_count(logs, cb, "incremental logs") >= 1, "a logs-only backup lists logs");
    copy_listed(h, logs, CSBFT_LOG, "incremental log");
    CHECK_HR(api.BackupEnd(h), S_OK, "BackupEnd(LOGS_ONLY)");
    api.BackupFree(names);
    api.BackupFree(logs);
}

static void test_incomplete(const WCHAR *server)
{
    HCSBC h = NULL;
    WCHAR *names = NULL;
    DWORD cb = 0;
    LARGE_INTEGER size;
    unsigned char buf[100];
    DWORD got;
    /* Ended without reading: nothing recorded, the session is gone. */
    CHECK_HR(api.BackupPrepare(server, 0, CSBACKUP_TYPE_FULL, &h), S_OK, "BackupPrepare for an incomplete backup");
    CHECK_HR(api.BackupEnd(h), hrInvalidBackupSequence, "BackupEnd of a backup that read nothing");
    CHECK_HR(api.BackupTruncateLogs(h), E_HANDLE, "the handle ended with the failed BackupEnd");

    /* A file closed half-read blocks TruncateLogs and End. */
    CHECK_HR(api.BackupPrepare(server, 0, CSBACKUP_TYPE_FULL, &h), S_OK, "BackupPrepare after an incomplete backup");
    CHECK_HR(api.BackupGetDatabaseNames(h, &names, &cb), S_OK, "BackupGetDatabaseNames");
    CHECK_HR(api.BackupOpenFile(h, names + 1, 0, &size), S_OK, "BackupOpenFile");
    CHECK_HR(api.BackupRead(h, buf, sizeof buf, &got), S_OK, "BackupRead 100 bytes");
    CHECK(got == sizeof buf, "100 bytes read (%u)", (unsigned)got);
    CHECK_HR(api.BackupClose(h), S_OK, "BackupClose half-read");
    CHECK_HR(api.BackupTruncateLogs(h), hrInvalidBackupSequence, "BackupTruncateLogs after a half-read file");
    CHECK_HR(api.BackupEnd(h), hrInvalidBackupSequence, "BackupEnd after a half-read file");
    api.BackupFree(names);

    /* End with a file still open closes it. */
    CHECK_HR(api.BackupPrepare(server, 0, CSBACKUP_TYPE_FULL, &h), S_OK, "BackupPrepare");
    CHECK_HR(api.BackupGetDatabaseNames(h, &names, &cb), S_OK, "BackupGetDatabaseNames");
    CHECK_HR(api.BackupOpenFile(h, names + 1, 0, &size), S_OK, "BackupOpenFile");
    CHECK_HR(api.BackupEnd(h), hrInvalidBackupSequence, "BackupEnd with a file open");
    api.BackupFree(names);
    HCSBC next = NULL;
    CHECK_HR(api.BackupPrepare(server, 0, CSBACKUP_TYPE_FULL, &next), S_OK, "the server's session was freed by BackupEnd");
    CHECK(next != h, "handles are not reused");
    CHECK_HR(api.BackupEnd(next), hrInvalidBackupSequence, "BackupEnd");
}

static void test_server_control(const WCHAR *server)
{
    DWORD cb = 5;
    BYTE *pb = (BYTE *)1;
    covers("CertSrvServerControlW");
    CHECK_HR(api.ServerControl(NULL, CSCONTROL_SHUTDOWN, NULL, NULL), E_POINTER, "ServerControl(NULL name)");
    CHECK_HR(api.ServerControl(server, CSCONTROL_SUSPEND, &cb, &pb), E_INVALIDARG, "ServerControl(CSCONTROL_SUSPEND)");
    CHECK(cb == 0 && pb == NULL, "pcbOut and ppbOut cleared");
    CHECK_HR(api.ServerControl(server, 99, NULL, NULL), E_INVALIDARG, "ServerControl(unknown control)");
    cb = 5;
    pb = (BYTE *)1;
    CHECK_HR(api.ServerControl(server, CSCONTROL_SHUTDOWN, &cb, &pb), S_OK, "ServerControl(CSCONTROL_SHUTDOWN)");
    CHECK(cb == 0 && pb == NULL, "no output from CSCONTROL_SHUTDOWN");
    /* The server stops shortly after answering. */
    HRESULT hr = S_OK;
    BOOL online = TRUE;
    for (int i = 0; i < 100; i++) {
        hr = api.IsServerOnline(server, &online);
        if (hr == hrCouldNotConnect)
            break;
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    CHECK_HR(hr, hrCouldNotConnect, "the server is gone after CSCONTROL_SHUTDOWN");
}

/* test_sha256 checks the example's SHA-256 against the FIPS 180-4 vectors,
 * since certbkxp.dat depends on it. */
static void test_sha256(void)
{
    static const struct {
        const char *in;
        const char *want;
    } v[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        struct sha256 h;
        unsigned char d[32];
        char hex[65];
        sha256_init(&h);
        sha256_update(&h, v[i].in, strlen(v[i].in));
        sha256_final(&h, d);
        sha256_hex(d, hex);
        CHECK(strcmp(hex, v[i].want) == 0, "sha256 vector %zu", i);
    }
}

static void test_utf16(void)
{
    const char *s = "Zürich CA \xF0\x9F\x94\x92"; /* a BMP letter and a code point above U+FFFF */
    WCHAR *w = wstr_from_utf8(s);
    CHECK(w != NULL && wstr_len(w) == 12 && w[1] == 0x00FC && w[10] == 0xD83D && w[11] == 0xDD12, "UTF-8 to UTF-16");
    char *back = w ? wstr_to_utf8(w) : NULL;
    CHECK(back != NULL && strcmp(back, s) == 0, "UTF-16 to UTF-8 round trip");
    free(w);
    free(back);
    CHECK(wstr_from_utf8("\xC0\x80") == NULL, "overlong UTF-8 refused");
}

int leak_probe(const char *lib, const char *server8, const char *mode)
{
    api.lib = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (api.lib == NULL) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 1;
    }
    api.BackupPrepare = (PFNCERTSRVBACKUPPREPAREW)dlsym(api.lib, "CertSrvBackupPrepareW");
    api.RestoreGetDatabaseLocations = (PFNCERTSRVRESTOREGETDATABASELOCATIONSW)dlsym(api.lib, "CertSrvRestoreGetDatabaseLocationsW");
    api.BackupEnd = (PFNCERTSRVBACKUPEND)dlsym(api.lib, "CertSrvBackupEnd");
    api.BackupFree = (PFNCERTSRVBACKUPFREE)dlsym(api.lib, "CertSrvBackupFree");
    WCHAR *server = W(server8);
    HCSBC h = NULL;
    WCHAR *list = NULL;
    DWORD cb = 0;
    int rc = 1;
    if (SUCCEEDED(api.BackupPrepare(server, 0, CSBACKUP_TYPE_FULL, &h)) &&
        SUCCEEDED(api.RestoreGetDatabaseLocations(h, &list, &cb))) {
        printf("leak-probe list bytes %u\n", (unsigned)cb);
        if (strcmp(mode, "free") == 0)
            api.BackupFree(list);
        list = NULL; /* in "leak" mode the only pointer to the list is gone */
        rc = 0;
    }
    api.BackupEnd(h); /* the backup read nothing: hrInvalidBackupSequence, as expected */
    dlclose(api.lib);
    free(server);
    return rc;
}

/* suspended_probe checks a CA suspended for a restore: online but not
 * serving, so IsServerOnline says FALSE and BackupPrepare is refused. */
static int suspended_probe(const char *lib, const char *server8)
{
    if (load(lib) != 0)
        return 1;
    WCHAR *server = W(server8);
    BOOL online = TRUE;
    HCSBC h = NULL;
    CHECK_HR(api.IsServerOnline(server, &online), S_OK, "IsServerOnline(suspended CA)");
    CHECK(online == FALSE, "a suspended CA is not online");
    CHECK_HR(api.BackupPrepare(server, 0, CSBACKUP_TYPE_FULL, &h), CERTSRV_E_SERVER_SUSPENDED, "BackupPrepare(suspended CA)");
    CHECK(h == NULL, "no handle from a suspended CA");
    free(server);
    dlclose(api.lib);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--leak-probe") == 0)
        return leak_probe(argv[2], argv[3], argv[4]);
    if (argc == 4 && strcmp(argv[1], "--suspended") == 0)
        return suspended_probe(argv[2], argv[3]);
    if (argc != 7) {
        fprintf(stderr, "usage: test_certbcli LIB SERVER DEAD_SERVER READER_CREDS LIVE_DATA STOPPED_DATA\n"
                        "       test_certbcli --leak-probe LIB SERVER free|leak\n"
                        "       test_certbcli --suspended LIB SERVER\n");
        return 2;
    }
    if (getenv("CERTADM_CREDS") == NULL) {
        fprintf(stderr, "CERTADM_CREDS must name an Operator credential\n");
        return 2;
    }
    test_sha256();
    test_utf16();
    if (load(argv[1]) != 0) {
        printf("%d passed, %d failed\n", passed, failed);
        return 1;
    }
    WCHAR *server = W(argv[2]), *dead = W(argv[3]);
    test_is_server_online(server, dead, argv[2]);
    test_prepare_errors(server, argv[4]);
    test_bad_handles(NULL);
    test_full_backup(server);
    test_logs_only(server);
    test_incomplete(server);
    test_restore(argv[5], argv[6]);
    test_server_control(server);
    free(server);
    free(dead);
    dlclose(api.lib);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}

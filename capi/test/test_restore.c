/*
 * test_restore.c — the restore functions of libcertadm.so, part of
 * test_certbcli (see test_certbcli.c): RestorePrepare on a running and on a
 * stopped CA, the restore map of a local data directory, every argument
 * error of RestoreRegister, a restore completed with a failure, one
 * registered through a file and completed, and the refusal of a new restore
 * while a completed one waits for recovery.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "certbcli.h"
#include "harness.h"
#include "utf16.h"

/* path_join returns "<dir>/<name>" from malloc. */
static char *path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static void mkdir_p(const char *path) { mkdir(path, 0700); }

static int file_exists(const char *path) { return access(path, F_OK) == 0; }

void test_restore(const char *live8, const char *stopped8)
{
    WCHAR *live = W(live8), *stopped = W(stopped8);
    HCSBC h = (HCSBC)1;
    covers("CertSrvRestorePrepareW");
    covers("CertSrvRestoreRegisterW");
    covers("CertSrvRestoreRegisterThroughFile");
    covers("CertSrvRestoreRegisterComplete");
    covers("CertSrvRestoreEnd");

    CHECK_HR(api.RestorePrepare(NULL, CSRESTORE_TYPE_FULL, &h), E_POINTER, "RestorePrepare(NULL directory)");
    CHECK(h == NULL, "*phbc is NULL after a failure");
    CHECK_HR(api.RestorePrepare(stopped, CSRESTORE_TYPE_FULL, NULL), E_POINTER, "RestorePrepare(NULL phbc)");
    CHECK_HR(api.RestorePrepare(stopped, 0, &h), E_INVALIDARG, "RestorePrepare(flags 0)");
    CHECK_HR(api.RestorePrepare(stopped, CSRESTORE_TYPE_ONLINE, &h), E_INVALIDARG, "RestorePrepare(CSRESTORE_TYPE_ONLINE)");
    CHECK_HR(api.RestorePrepare(live, CSRESTORE_TYPE_FULL, &h), CERTBCLI_E_BUSY, "RestorePrepare while the CA runs");

    /* A restore that fails: registered, completed with the failure. */
    CHECK_HR(api.RestorePrepare(stopped, CSRESTORE_TYPE_FULL, &h), S_OK, "RestorePrepare(stopped CA)");
    HCSBC second = NULL;
    CHECK_HR(api.RestorePrepare(stopped, CSRESTORE_TYPE_FULL, &second), CERTBCLI_E_BUSY, "a second RestorePrepare of the same directory");

    /* The restore handle is not a backup handle. */
    WCHAR *list = NULL;
    DWORD cb = 0;
    LARGE_INTEGER size;
    CHECK_HR(api.BackupGetDatabaseNames(h, &list, &cb), E_HANDLE, "BackupGetDatabaseNames(restore handle)");
    CHECK_HR(api.BackupOpenFile(h, u"/x", 0, &size), E_HANDLE, "BackupOpenFile(restore handle)");
    CHECK_HR(api.BackupEnd(h), E_HANDLE, "BackupEnd(restore handle)");

    /* Where the files go: the restore map of the data directory. */
    CHECK_HR(api.RestoreGetDatabaseLocations(h, &list, &cb), S_OK, "RestoreGetDatabaseLocations(restore handle)");
    int n = list_count(list, cb, "local restore map");
    CHECK(n == 3, "the local restore map has 3 entries (%d)", n);
    WCHAR *db = NULL, *logdir = NULL, *sysdir = NULL;
    for (int i = 0; i < n; i++) {
        const WCHAR *e = list_entry(list, i);
        if (e[0] == CSBFT_CERTSERVER_DATABASE)
            db = (WCHAR *)e + 1;
        else if (e[0] == CSBFT_LOG_DIR)
            logdir = (WCHAR *)e + 1;
        else if (e[0] == CSBFT_CHECKPOINT_DIR)
            sysdir = (WCHAR *)e + 1;
    }
    CHECK(db && logdir && sysdir, "database, log and checkpoint entries");
    if (!(db && logdir && sysdir)) {
        api.BackupFree(list);
        api.RestoreEnd(h);
        return;
    }
    char *log8 = wstr_to_utf8(logdir), *want_log = path_join(stopped8, "log");
    CHECK(strcmp(log8, want_log) == 0, "the log directory is %s (%s)", want_log, log8);

    CSEDB_RSTMAPW map = {u"/var/lib/certsrv-old/db/Old host CA.db", db};
    CSEDB_RSTMAPW nullname = {NULL, db};
    char *backuplogs8 = path_join(stopped8, "backup-logs");
    WCHAR *backuplogs = W(backuplogs8);
    const WCHAR unpaired[] = {'/', 0xDC00, 0};

    CHECK_HR(api.RestoreRegisterComplete(h, S_OK), hrInvalidBackupSequence, "RestoreRegisterComplete before RestoreRegister");
    CHECK_HR(api.RestoreRegister(h, sysdir, logdir, &map, -1, backuplogs, 1, 2), E_INVALIDARG, "RestoreRegister(crstmap -1)");
    CHECK_HR(api.RestoreRegister(h, sysdir, logdir, NULL, 1, backuplogs, 1, 2), E_POINTER, "RestoreRegister(NULL rgrstmap)");
    CHECK_HR(api.RestoreRegister(h, sysdir, logdir, &nullname, 1, backuplogs, 1, 2), E_POINTER, "RestoreRegister(NULL database name)");
    CHECK_HR(api.RestoreRegister(h, unpaired, logdir, &map, 1, backuplogs, 1, 2), E_INVALIDARG, "RestoreRegister(unpaired surrogate)");
    CHECK_HR(api.RestoreRegister(h, sysdir, logdir, &map, 0, backuplogs, 1, 2), E_INVALIDARG, "RestoreRegister(empty restore map)");
    CHECK_HR(api.RestoreRegister(h, sysdir, logdir, &map, 1, backuplogs, 0, 2), E_INVALIDARG, "RestoreRegister(genLow 0)");
    CHECK_HR(api.RestoreRegister(h, sysdir, logdir, &map, 1, backuplogs, 3, 2), E_INVALIDARG, "RestoreRegister(genLow > genHigh)");
    CHECK_HR(api.RestoreRegister(h, sysdir, u"/elsewhere/log", &map, 1, backuplogs, 1, 2), E_INVALIDARG, "RestoreRegister(a log directory the CA does not use)");
    CHECK_HR(api.RestoreRegister(h, NULL, logdir, &map, 1, backuplogs, 1, 2), E_INVALIDARG, "RestoreRegister(NULL checkpoint path)");

    char *record = path_join(stopped8, "restore/restore.json");
    CHECK_HR(api.RestoreRegister(h, sysdir, logdir, &map, 1, backuplogs, 1, 2), S_OK, "RestoreRegister");
    CHECK(file_exists(record), "the registration is recorded in %s", record);
    CHECK_HR(api.RestoreRegisterComplete(h, E_UNEXPECTED), S_OK, "RestoreRegisterComplete(failure)");
    CHECK_HR(api.RestoreRegisterComplete(h, S_OK), hrInvalidBackupSequence, "a second RestoreRegisterComplete");
    CHECK_HR(api.RestoreEnd(h), S_OK, "RestoreEnd");
    CHECK_HR(api.RestoreEnd(h), E_HANDLE, "a second RestoreEnd");
    CHECK_HR(api.RestoreRegister(h, sysdir, logdir, &map, 1, backuplogs, 1, 2), E_HANDLE, "RestoreRegister after RestoreEnd");

    /* A failed restore may be run again: through a file, completed. */
    CHECK_HR(api.RestorePrepare(stopped, CSRESTORE_TYPE_FULL, &h), S_OK, "RestorePrepare after a failed restore");
    CHECK_HR(api.RestoreRegisterThroughFile(h, sysdir, logdir, &map, 1, NULL, 1, 2), E_INVALIDARG, "RestoreRegisterThroughFile(no backup log path)");
    mkdir_p(backuplogs8);
    char *through = path_join(backuplogs8, "restore.json");
    CHECK_HR(api.RestoreRegisterThroughFile(h, sysdir, logdir, &map, 1, backuplogs, 1, 2), S_OK, "RestoreRegisterThroughFile");
    CHECK(file_exists(through), "the registration was written to %s", through);
    CHECK(file_exists(record), "and to the data directory's record");
    /* The backup's logs are not in place yet: completing is refused. */
    CHECK_HR(api.RestoreRegisterComplete(h, S_OK), E_INVALIDARG, "RestoreRegisterComplete(S_OK) before the logs are copied");
    for (int gen = 1; gen <= 2; gen++) {
        char name[32];
        snprintf(name, sizeof name, "ca%08X.log", gen);
        char *p = path_join(backuplogs8, name);
        FILE *f = fopen(p, "w");
        CHECK(f != NULL, "copy %s", p);
        if (f)
            fclose(f);
        free(p);
    }
    CHECK_HR(api.RestoreRegisterComplete(h, S_OK), S_OK, "RestoreRegisterComplete(S_OK)");
    CHECK_HR(api.RestoreEnd(h), S_OK, "RestoreEnd");

    /* Completed and waiting for recovery: no new restore until it ran. */
    CHECK_HR(api.RestorePrepare(stopped, CSRESTORE_TYPE_FULL, &second), hrRestoreInProgress, "RestorePrepare while a completed restore waits for recovery");

    api.BackupFree(list);
    free(log8);
    free(want_log);
    free(backuplogs8);
    free(backuplogs);
    free(record);
    free(through);
    free(live);
    free(stopped);
}


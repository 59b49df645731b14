/*
 * certbcli.h — the Certificate Services backup and restore functions of
 * certsrv, for C and C++ programs on Linux.
 *
 * The library libcertadm.so exports the functions of the Windows header of
 * the same name (Certadm.dll) under their exported names, with the same
 * parameters, the same constants and the same list format, so a program
 * written against the Windows functions ports by changing LoadLibrary,
 * GetProcAddress and FreeLibrary into dlopen, dlsym and dlclose. This
 * header is written for certsrv; where certsrv differs from Windows it says
 * so. docs/c-integration.md walks through a complete backup.
 *
 * Strings
 *   Every string is UTF-16 (WCHAR is one 16-bit code unit), terminated by a
 *   zero unit. In C11 a u"..." literal is such a string. A string passed in
 *   must be valid UTF-16 (no unpaired surrogate) and at most
 *   CERTBCLI_MAX_STRING units long, else the call fails with E_INVALIDARG.
 *
 * The server name
 *   pwszServerName is "host:port", the address of the CA's admin API (what
 *   `certsrv serve` prints and writes to <data>/admin/server). Leading
 *   backslashes, as in L"\\\\host:port", are ignored. The empty string L""
 *   means: the CERTADM_SERVER environment variable, else the server file in
 *   the credentials directory, else 127.0.0.1:8443. NULL is E_POINTER.
 *   For CertSrvRestorePrepareW the name is instead the path of the CA's data
 *   directory on this host (restore is local and runs with the CA stopped).
 *
 * Credentials
 *   Every call to the server authenticates with a client certificate over
 *   TLS 1.3. The credentials directory (client.crt, client.key, trust.crt and
 *   optionally server) is named by the environment variable CERTADM_CREDS,
 *   the variable the certadm command and Go library use; when it is unset,
 *   ./certsrv-data/admin is used if it exists. The library reads the
 *   variable with getenv at every call that connects, so setenv before such a
 *   call takes effect. Backups need the Operator role, CertSrvServerControlW
 *   the Operator or Administrator role.
 *
 * Lists
 *   CertSrvRestoreGetDatabaseLocationsW, CertSrvBackupGetDatabaseNamesW,
 *   CertSrvBackupGetBackupLogsW and CertSrvBackupGetDynamicFileListW return a
 *   multi-string: every entry is a zero-terminated UTF-16 string, and one
 *   more zero unit ends the list (an empty list is a single zero unit).
 *   The first character of each entry is its type tag, one of the CSBFT_*
 *   values below, and the rest is the name; dynamic-file entries have no
 *   tag. *pcbSize is the size of the whole list in bytes, both kinds of zero
 *   unit included. The library allocates the list; the caller must release
 *   it with CertSrvBackupFree and nothing else.
 *
 * Handles
 *   An HCSBC is an opaque handle, not a pointer: never dereference it. It is
 *   valid from the Prepare call that made it until CertSrvBackupEnd or
 *   CertSrvRestoreEnd, whatever those return. A handle that was never valid,
 *   has ended, or is of the other kind (a restore handle passed to a backup
 *   function) gives E_HANDLE. Calls on one handle may come from any thread
 *   but are serialized; calls on different handles run in parallel.
 *
 * Errors
 *   Every HRESULT function returns S_OK (0) on success or one of the values
 *   listed at the end of this header; test with SUCCEEDED and FAILED.
 *   CertSrvBackupTruncateLogs also returns S_FALSE (1), a success, when it
 *   deleted no log file. On failure, out-parameters are set to zero or NULL.
 *   An HRESULT loses the server's explanation; set the environment variable
 *   CERTBCLI_TRACE to a non-empty value and every failing call writes one
 *   line to standard error: the function, the message and the HRESULT.
 *
 * Threads and unloading
 *   The library starts the Go runtime when it is loaded; its threads keep
 *   running until the process exits, and dlclose does not unload it (it is
 *   linked as not unloadable). Calling dlclose is still correct and keeps a
 *   program portable.
 */
#ifndef CERTBCLI_H
#define CERTBCLI_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library's file name, for dlopen. */
#define CERTADM_LIBRARY_NAME "libcertadm.so"

/* The longest string, in UTF-16 code units without the terminating zero,
 * that a function accepts. */
#define CERTBCLI_MAX_STRING 32767

/* ---- Windows base types, with their Windows sizes ----------------------
 * Define CERTBCLI_HAVE_WINDOWS_TYPES before including this header when
 * another header (Wine's, say) already defines them. */
#ifndef CERTBCLI_HAVE_WINDOWS_TYPES
#ifdef __cplusplus
typedef char16_t WCHAR;
#else
typedef uint16_t WCHAR;
#endif
typedef int32_t HRESULT;
typedef int BOOL;
typedef uint8_t BYTE;
typedef uint32_t DWORD;
typedef uint32_t ULONG;
typedef int32_t LONG;
#ifndef VOID
#define VOID void
#endif
/* A 64-bit integer with its two halves (little endian), as in Windows.
 * The anonymous member, for li.LowPart, needs C11. */
typedef union _LARGE_INTEGER {
#if !defined(__cplusplus) && defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
    struct {
        DWORD LowPart;
        LONG HighPart;
    };
#endif
    struct {
        DWORD LowPart;
        LONG HighPart;
    } u;
    int64_t QuadPart;
} LARGE_INTEGER;
#ifndef TRUE
#define TRUE 1
#endif
#ifndef FALSE
#define FALSE 0
#endif
#ifndef WINAPI
#define WINAPI
#endif
#ifndef SUCCEEDED
#define SUCCEEDED(hr) (((HRESULT)(hr)) >= 0)
#endif
#ifndef FAILED
#define FAILED(hr) (((HRESULT)(hr)) < 0)
#endif
#endif /* CERTBCLI_HAVE_WINDOWS_TYPES */

/* ---- Backup and restore types ------------------------------------------ */

/* dwBackupFlags of CertSrvBackupPrepareW. */
#define CSBACKUP_TYPE_FULL       0x00000001 /* database snapshot and its logs */
#define CSBACKUP_TYPE_LOGS_ONLY  0x00000002 /* logs since the last recorded backup */
#define CSBACKUP_TYPE_MASK       0x00000003
#define CSBACKUP_DISABLE_INCREMENTAL 0xffffffff /* not accepted by certsrv */

/* dwRestoreFlags of CertSrvRestorePrepareW. */
#define CSRESTORE_TYPE_FULL      0x00000001
#define CSRESTORE_TYPE_ONLINE    0x00000002 /* not supported: E_INVALIDARG */
#define CSRESTORE_TYPE_CATCHUP   0x00000004 /* not accepted: catch-up is always on */
#define CSRESTORE_TYPE_MASK      0x00000005

/* The type tag that starts every entry of a list. */
typedef WCHAR CSBFT;

#define CSBFT_DIRECTORY          0x80 /* the entry is a directory */
#define CSBFT_DATABASE_DIRECTORY 0x40 /* the file belongs in the database directory */
#define CSBFT_LOG_DIRECTORY      0x20 /* the file belongs in the log directory */

/* '!' (0x21): a log generation, e.g. !/var/lib/certsrv/log/ca0000000C.log */
#define CSBFT_LOG                 ((CSBFT)(0x01 | CSBFT_LOG_DIRECTORY))
/* 0x82: the log directory (restore map). */
#define CSBFT_LOG_DIR             ((CSBFT)(0x02 | CSBFT_DIRECTORY))
/* 0x83: the checkpoint directory (restore map). */
#define CSBFT_CHECKPOINT_DIR      ((CSBFT)(0x03 | CSBFT_DIRECTORY))
/* 'D' (0x44): the database file (a backup list and the restore map). */
#define CSBFT_CERTSERVER_DATABASE ((CSBFT)(0x04 | CSBFT_DATABASE_DIRECTORY))
/* '%' (0x25): a patch file. certsrv never lists one. */
#define CSBFT_PATCH_FILE          ((CSBFT)(0x05 | CSBFT_LOG_DIRECTORY))
/* 0x0F: a file of unknown type. certsrv never lists one. */
#define CSBFT_UNKNOWN             ((CSBFT)0x0f)

/* A backup or restore context handle. Opaque; see "Handles" above. */
typedef void *HCSBC;

/* One entry of a restore map passed to CertSrvRestoreRegisterW: the
 * database path as the backup's restore map named it, and the path the
 * restored file was written to. */
typedef struct tagCSEDB_RSTMAPW {
    WCHAR *pwszDatabaseName;
    WCHAR *pwszNewDatabaseName;
} CSEDB_RSTMAPW;
#define CSEDB_RSTMAP CSEDB_RSTMAPW

/* dwControlFlags of CertSrvServerControlW. */
#define CSCONTROL_SHUTDOWN 0x00000001 /* stop the CA */
#define CSCONTROL_SUSPEND  0x00000002 /* not supported: E_INVALIDARG */
#define CSCONTROL_RESTART  0x00000003 /* not supported: E_INVALIDARG */

/* The generic names map to the exported (W) names. */
#define CertSrvIsServerOnline              CertSrvIsServerOnlineW
#define CertSrvBackupGetDynamicFileList    CertSrvBackupGetDynamicFileListW
#define CertSrvBackupPrepare               CertSrvBackupPrepareW
#define CertSrvBackupGetDatabaseNames      CertSrvBackupGetDatabaseNamesW
#define CertSrvBackupOpenFile              CertSrvBackupOpenFileW
#define CertSrvBackupGetBackupLogs         CertSrvBackupGetBackupLogsW
#define CertSrvRestoreGetDatabaseLocations CertSrvRestoreGetDatabaseLocationsW
#define CertSrvRestorePrepare              CertSrvRestorePrepareW
#define CertSrvRestoreRegister             CertSrvRestoreRegisterW
#define CertSrvServerControl               CertSrvServerControlW

/* ---- Function types, for dlsym ------------------------------------------
 * As in the Windows header, FN* names a function type: declare
 *     FNCERTSRVBACKUPREAD *pfnRead = (FNCERTSRVBACKUPREAD *)dlsym(h, "CertSrvBackupRead");
 * PFN* is the matching pointer type. */

/* CertSrvIsServerOnlineW: *pfServerOnline is TRUE when the CA answers and
 * is online, FALSE when it is suspended for a restore (S_OK in both cases).
 * An unreachable server is hrCouldNotConnect, a refused credential
 * E_ACCESSDENIED; *pfServerOnline is FALSE then. */
typedef HRESULT(WINAPI FNCERTSRVISSERVERONLINEW)(WCHAR const *pwszServerName, BOOL *pfServerOnline);

/* CertSrvBackupPrepareW: starts a backup session and returns its handle in
 * *phbc. grbitJet is ignored (pass 0). dwBackupFlags is CSBACKUP_TYPE_FULL
 * or CSBACKUP_TYPE_LOGS_ONLY, else E_INVALIDARG. One session runs at a time
 * on a server (hrBackupInProgress). A logs-only backup needs a recorded full
 * backup (hrFullBackupNotTaken), circular logging off (hrCircularLogging),
 * no restore since the last full backup (hrIncrementalBackupDisabled) and
 * every log since the last backup (hrLogFileNotFound). */
typedef HRESULT(WINAPI FNCERTSRVBACKUPPREPAREW)(WCHAR const *pwszServerName, ULONG grbitJet, ULONG dwBackupFlags, HCSBC *phbc);

/* CertSrvRestoreGetDatabaseLocationsW: the restore map, a list of three
 * entries: CSBFT_CERTSERVER_DATABASE with the database file, CSBFT_LOG_DIR
 * with the log directory and CSBFT_CHECKPOINT_DIR with the checkpoint
 * directory, as absolute paths. With a backup handle they are the server's
 * paths (save them with the backup, e.g. as DataBase/certbkxp.dat); with a
 * restore handle they are the paths the CA of the data directory being
 * restored uses, which need its configuration (certsrv.json) for the CA
 * name: without one the call fails with CERTBCLI_E_FILE_NOT_FOUND. */
typedef HRESULT(WINAPI FNCERTSRVRESTOREGETDATABASELOCATIONSW)(HCSBC hbc, WCHAR **ppwszzDatabaseLocationList, DWORD *pcbSize);

/* CertSrvBackupGetDatabaseNamesW: the database files to copy: for a full
 * backup one CSBFT_CERTSERVER_DATABASE entry (the snapshot taken at
 * prepare time, named by its absolute path on the server), for a logs-only
 * backup an empty list. */
typedef HRESULT(WINAPI FNCERTSRVBACKUPGETDATABASENAMESW)(HCSBC hbc, WCHAR **ppwszzAttachmentInformation, DWORD *pcbSize);

/* CertSrvBackupOpenFileW: opens a file that GetDatabaseNames or
 * GetBackupLogs listed, named exactly as listed without its tag, and
 * returns its size in *pliFileSize. cbReadHintSize is the transfer chunk
 * size to use (clamped to 64 KiB .. 4 MiB; 0 means 1 MiB). One file is open
 * at a time (hrAlreadyOpen). A name the session did not list is
 * ERROR_FILE_NOT_FOUND; a relative name or a dynamic file E_INVALIDARG. */
typedef HRESULT(WINAPI FNCERTSRVBACKUPOPENFILEW)(HCSBC hbc, WCHAR const *pwszAttachmentName, DWORD cbReadHintSize, LARGE_INTEGER *pliFileSize);

/* CertSrvBackupRead: copies the next bytes of the open file into pvBuffer
 * and stores their count in *pcbRead. It fills the whole buffer unless the
 * end of the file comes first, so *pcbRead < cbBuffer means the end was
 * reached; at the end it returns S_OK with *pcbRead = 0. Read until the
 * bytes add up to the size OpenFile returned. cbBuffer 0 is
 * ERROR_INSUFFICIENT_BUFFER; no open file is hrInvalidBackupSequence. A
 * log that fails verification on the server is hrLogFileCorrupt; a stream
 * that stops early ERROR_HANDLE_EOF; one that sends bad data
 * ERROR_INVALID_DATA; no progress for CERTBCLI_READ_TIMEOUT_SECONDS
 * ERROR_TIMEOUT. After an error every later Read of the file fails the
 * same way; close it. */
typedef HRESULT(WINAPI FNCERTSRVBACKUPREAD)(HCSBC hbc, VOID *pvBuffer, DWORD cbBuffer, DWORD *pcbRead);

/* CertSrvBackupClose: closes the open file (hrInvalidBackupSequence when
 * none is open). A file closed before its end makes TruncateLogs and End
 * refuse to count the backup as complete. */
typedef HRESULT(WINAPI FNCERTSRVBACKUPCLOSE)(HCSBC hbc);

/* CertSrvBackupGetBackupLogsW: closes the server's current log generation
 * and lists the generations to copy, CSBFT_LOG entries with absolute paths.
 * Allowed once per session. */
typedef HRESULT(WINAPI FNCERTSRVBACKUPGETBACKUPLOGSW)(HCSBC hbc, WCHAR **ppwszzBackupLogFiles, DWORD *pcbSize);

/* CertSrvBackupTruncateLogs: deletes the log generations this backup
 * copied and the server no longer needs. Refused with
 * hrInvalidBackupSequence unless every listed file was read to its end: call
 * it only once they are stored safely. Returns S_OK when it deleted at
 * least one generation and S_FALSE when it deleted none (for example
 * because the remaining ones are still needed for crash recovery). */
typedef HRESULT(WINAPI FNCERTSRVBACKUPTRUNCATELOGS)(HCSBC hbc);

/* CertSrvBackupGetDynamicFileListW: the files to save by other means (CA
 * certificates and CRLs). The entries have no tag; each is the URL of the
 * file on the CA's publication endpoint, e.g.
 * http://127.0.0.1:8080/CertEnroll/Example%20CA.crl (the counterpart of the
 * Windows UNC path). Fetch them with an HTTP GET; CertSrvBackupOpenFileW
 * refuses them. */
typedef HRESULT(WINAPI FNCERTSRVBACKUPGETDYNAMICFILELISTW)(HCSBC hbc, WCHAR **ppwszzFileList, DWORD *pcbSize);

/* CertSrvBackupEnd: ends the session. The server records the backup only
 * if every listed file was read to its end; otherwise nothing is recorded
 * and the call returns hrInvalidBackupSequence. The handle is invalid
 * afterwards, whatever the result; an open file is closed. */
typedef HRESULT(WINAPI FNCERTSRVBACKUPEND)(HCSBC hbc);

/* CertSrvBackupFree: releases a list or buffer the library returned. NULL
 * does nothing. Any other pointer, or freeing twice, is undefined, as with
 * free(3). */
typedef VOID(WINAPI FNCERTSRVBACKUPFREE)(VOID *pv);

/* CertSrvRestorePrepareW: starts registering a restore into the data
 * directory pwszServerName, a local path (L"" is ./certsrv-data). The
 * handle holds the directory's lock until CertSrvRestoreEnd. dwRestoreFlags
 * must be CSRESTORE_TYPE_FULL (E_INVALIDARG otherwise). The CA must be
 * stopped: while it (or another restore or recovery) holds the directory the
 * call fails with CERTBCLI_E_BUSY. A registration that was never completed,
 * or a completed one whose recovery has not run yet, gives
 * hrRestoreInProgress (`certsrv restore --cancel` removes it). */
typedef HRESULT(WINAPI FNCERTSRVRESTOREPREPAREW)(WCHAR const *pwszServerName, ULONG dwRestoreFlags, HCSBC *phbc);

/* CertSrvRestoreRegisterW: records the restore to perform at the next
 * start of the CA (hard recovery), in <data>/restore/restore.json: the
 * checkpoint directory and the log directory (the restore map's 0x83 and
 * 0x82 entries as they are on this host), the restore map (exactly one
 * entry: the database path the backup's restore map named -> the path it
 * was restored to), the directory holding the backup's log generations,
 * and the lowest and highest of them. The paths must be the ones the CA of
 * the data directory uses (see CertSrvRestoreGetDatabaseLocationsW) and
 * all are required; otherwise E_INVALIDARG. From now on the CA refuses to
 * start until CertSrvRestoreRegisterComplete. Calling it again before
 * RegisterComplete replaces the registration. */
typedef HRESULT(WINAPI FNCERTSRVRESTOREREGISTERW)(HCSBC hbc, WCHAR const *pwszCheckPointFilePath, WCHAR const *pwszLogPath, CSEDB_RSTMAPW rgrstmap[], LONG crstmap, WCHAR const *pwszBackupLogPath, ULONG genLow, ULONG genHigh);

/* CertSrvRestoreRegisterThroughFile: as CertSrvRestoreRegisterW, and also
 * writes the registration to the file restore.json in pwszBackupLogPath
 * (same format as <data>/restore/restore.json), for the operator's records
 * on the backup medium. pwszBackupLogPath is required (E_INVALIDARG). */
typedef HRESULT(WINAPI FNCERTSRVRESTOREREGISTERTHROUGHFILE)(HCSBC hbc, WCHAR const *pwszCheckPointFilePath, WCHAR const *pwszLogPath, CSEDB_RSTMAPW rgrstmap[], LONG crstmap, WCHAR const *pwszBackupLogPath, ULONG genLow, ULONG genHigh);

/* CertSrvRestoreRegisterComplete: marks the registration complete when
 * hrRestoreState is a success (the files are in place; recovery runs at the
 * next start of the CA), or records the failure hrRestoreState, after which
 * the CA keeps refusing to start until a restore is run again to
 * completion or cancelled. Before a registration, or a second time:
 * hrInvalidBackupSequence. */
typedef HRESULT(WINAPI FNCERTSRVRESTOREREGISTERCOMPLETE)(HCSBC hbc, HRESULT hrRestoreState);

/* CertSrvRestoreEnd: ends the restore context and releases the data
 * directory; the handle is invalid afterwards, whatever the result. A
 * registration that was not completed stays and keeps the CA from
 * starting. */
typedef HRESULT(WINAPI FNCERTSRVRESTOREEND)(HCSBC hbc);

/* CertSrvServerControlW: CSCONTROL_SHUTDOWN asks the CA to stop; the call
 * returns once the server accepted the request. pcbOut and ppbOut may be
 * NULL; when given they are set to 0 and NULL (no output is defined). */
typedef HRESULT(WINAPI FNCERTSRVSERVERCONTROLW)(WCHAR const *pwszServerName, DWORD dwControlFlags, DWORD *pcbOut, BYTE **ppbOut);

typedef FNCERTSRVISSERVERONLINEW *PFNCERTSRVISSERVERONLINEW;
typedef FNCERTSRVBACKUPPREPAREW *PFNCERTSRVBACKUPPREPAREW;
typedef FNCERTSRVRESTOREGETDATABASELOCATIONSW *PFNCERTSRVRESTOREGETDATABASELOCATIONSW;
typedef FNCERTSRVBACKUPGETDATABASENAMESW *PFNCERTSRVBACKUPGETDATABASENAMESW;
typedef FNCERTSRVBACKUPOPENFILEW *PFNCERTSRVBACKUPOPENFILEW;
typedef FNCERTSRVBACKUPREAD *PFNCERTSRVBACKUPREAD;
typedef FNCERTSRVBACKUPCLOSE *PFNCERTSRVBACKUPCLOSE;
typedef FNCERTSRVBACKUPGETBACKUPLOGSW *PFNCERTSRVBACKUPGETBACKUPLOGSW;
typedef FNCERTSRVBACKUPTRUNCATELOGS *PFNCERTSRVBACKUPTRUNCATELOGS;
typedef FNCERTSRVBACKUPGETDYNAMICFILELISTW *PFNCERTSRVBACKUPGETDYNAMICFILELISTW;
typedef FNCERTSRVBACKUPEND *PFNCERTSRVBACKUPEND;
typedef FNCERTSRVBACKUPFREE *PFNCERTSRVBACKUPFREE;
typedef FNCERTSRVRESTOREPREPAREW *PFNCERTSRVRESTOREPREPAREW;
typedef FNCERTSRVRESTOREREGISTERW *PFNCERTSRVRESTOREREGISTERW;
typedef FNCERTSRVRESTOREREGISTERTHROUGHFILE *PFNCERTSRVRESTOREREGISTERTHROUGHFILE;
typedef FNCERTSRVRESTOREREGISTERCOMPLETE *PFNCERTSRVRESTOREREGISTERCOMPLETE;
typedef FNCERTSRVRESTOREEND *PFNCERTSRVRESTOREEND;
typedef FNCERTSRVSERVERCONTROLW *PFNCERTSRVSERVERCONTROLW;

/* ---- Prototypes, for programs linked with -lcertadm ---------------------
 * Define CERTBCLI_NO_PROTOTYPES to get only the types (a program that
 * loads the library with dlopen does not need them). */
#ifndef CERTBCLI_NO_PROTOTYPES
FNCERTSRVISSERVERONLINEW CertSrvIsServerOnlineW;
FNCERTSRVBACKUPPREPAREW CertSrvBackupPrepareW;
FNCERTSRVRESTOREGETDATABASELOCATIONSW CertSrvRestoreGetDatabaseLocationsW;
FNCERTSRVBACKUPGETDATABASENAMESW CertSrvBackupGetDatabaseNamesW;
FNCERTSRVBACKUPOPENFILEW CertSrvBackupOpenFileW;
FNCERTSRVBACKUPREAD CertSrvBackupRead;
FNCERTSRVBACKUPCLOSE CertSrvBackupClose;
FNCERTSRVBACKUPGETBACKUPLOGSW CertSrvBackupGetBackupLogsW;
FNCERTSRVBACKUPTRUNCATELOGS CertSrvBackupTruncateLogs;
FNCERTSRVBACKUPGETDYNAMICFILELISTW CertSrvBackupGetDynamicFileListW;
FNCERTSRVBACKUPEND CertSrvBackupEnd;
FNCERTSRVBACKUPFREE CertSrvBackupFree;
FNCERTSRVRESTOREPREPAREW CertSrvRestorePrepareW;
FNCERTSRVRESTOREREGISTERW CertSrvRestoreRegisterW;
FNCERTSRVRESTOREREGISTERTHROUGHFILE CertSrvRestoreRegisterThroughFile;
FNCERTSRVRESTOREREGISTERCOMPLETE CertSrvRestoreRegisterComplete;
FNCERTSRVRESTOREEND CertSrvRestoreEnd;
FNCERTSRVSERVERCONTROLW CertSrvServerControlW;
#endif

/* ---- Timeouts ------------------------------------------------------------
 * Connecting (and proving the credential) may take up to
 * CERTBCLI_DIAL_TIMEOUT_SECONDS; every other call to the server up to
 * CERTBCLI_CALL_TIMEOUT_SECONDS; one CertSrvBackupRead waits up to
 * CERTBCLI_READ_TIMEOUT_SECONDS for data. Then the call fails with
 * ERROR_TIMEOUT (or hrCouldNotConnect while connecting). */
#define CERTBCLI_DIAL_TIMEOUT_SECONDS 10
#define CERTBCLI_CALL_TIMEOUT_SECONDS 120
#define CERTBCLI_READ_TIMEOUT_SECONDS 120

/* ---- The HRESULT values these functions return ---------------------------- */
#define CERTBCLI_HR(x) ((HRESULT)(uint32_t)(x))

#ifndef S_OK
#define S_OK    CERTBCLI_HR(0x00000000) /* success */
#endif
#ifndef S_FALSE
#define S_FALSE CERTBCLI_HR(0x00000001) /* success; TruncateLogs deleted nothing */
#endif
#ifndef E_UNEXPECTED
#define E_UNEXPECTED   CERTBCLI_HR(0x8000FFFF) /* failure without a more specific code */
#endif
#ifndef E_NOTIMPL
#define E_NOTIMPL      CERTBCLI_HR(0x80004001) /* the server does not offer the operation */
#endif
#ifndef E_POINTER
#define E_POINTER      CERTBCLI_HR(0x80004003) /* a required pointer is NULL */
#endif
#ifndef E_HANDLE
#define E_HANDLE       CERTBCLI_HR(0x80070006) /* unknown, ended or wrong-kind handle */
#endif
#ifndef E_ACCESSDENIED
#define E_ACCESSDENIED CERTBCLI_HR(0x80070005) /* credential refused or role missing */
#endif
#ifndef E_OUTOFMEMORY
#define E_OUTOFMEMORY  CERTBCLI_HR(0x8007000E) /* a list could not be allocated */
#endif
#ifndef E_INVALIDARG
#define E_INVALIDARG   CERTBCLI_HR(0x80070057) /* malformed or out-of-range argument */
#endif
/* HRESULT_FROM_WIN32 of the Win32 errors used. */
#define CERTBCLI_E_FILE_NOT_FOUND      CERTBCLI_HR(0x80070002) /* unknown file; no credentials */
#define CERTBCLI_E_INVALID_DATA        CERTBCLI_HR(0x8007000D) /* the server sent bad data */
#define CERTBCLI_E_WRITE_PROTECT       CERTBCLI_HR(0x80070013) /* a local file system is read-only */
#define CERTBCLI_E_HANDLE_EOF          CERTBCLI_HR(0x80070026) /* a file stream ended early */
#define CERTBCLI_E_DISK_FULL           CERTBCLI_HR(0x80070070) /* a local file system is full */
#define CERTBCLI_E_INSUFFICIENT_BUFFER CERTBCLI_HR(0x8007007A) /* Read with cbBuffer 0 */
#define CERTBCLI_E_BUSY                CERTBCLI_HR(0x800700AA) /* the CA holds the data directory */
#define CERTBCLI_E_ALREADY_EXISTS      CERTBCLI_HR(0x800700B7)
#define CERTBCLI_E_CANCELLED           CERTBCLI_HR(0x800704C7)
#define CERTBCLI_E_TIMEOUT             CERTBCLI_HR(0x800705B4) /* see Timeouts */
/* certsrv.h */
#define CERTSRV_E_SERVER_SUSPENDED CERTBCLI_HR(0x80094006) /* the CA is suspended for restore */
/* The backup errors of certbcli.h (ntdsbmsg.h values). */
#define hrRestoreInProgress          CERTBCLI_HR(0xC7FF0004)
#define hrAlreadyOpen                CERTBCLI_HR(0xC7FF0005)
#define hrCouldNotConnect            CERTBCLI_HR(0xC7FF0007)
#define hrIncrementalBackupDisabled  CERTBCLI_HR(0xC7FF0009)
#define hrLogFileNotFound            CERTBCLI_HR(0xC7FF000A)
#define hrCircularLogging            CERTBCLI_HR(0xC7FF000B)
#define hrFullBackupNotTaken         CERTBCLI_HR(0xC7FF000E)
#define hrLogFileCorrupt             CERTBCLI_HR(0xC80001F5)
#define hrBackupInProgress           CERTBCLI_HR(0xC80001F9)
#define hrNoBackup                   CERTBCLI_HR(0xC8000208)
#define hrInvalidBackupSequence      CERTBCLI_HR(0xC8000209) /* call out of order */

#ifdef __cplusplus
}
#endif

#endif /* CERTBCLI_H */

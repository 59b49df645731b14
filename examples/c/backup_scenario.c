/*
 * backup_scenario — the "Backing Up Certificate Services" scenario of the
 * Windows documentation, steps 1 to 16, in C against libcertadm.so.
 *
 * Usage: backup_scenario HOST:PORT OUTDIR
 *
 * It takes a full backup of the certsrv CA at HOST:PORT (its admin API)
 * into OUTDIR, laid out as `certutil -backupDB` and `certadm backup` lay out
 * a backup set:
 *
 *     OUTDIR/DataBase/<CA name>.db       the database snapshot
 *     OUTDIR/DataBase/ca<8 hex>.log      the log generations
 *     OUTDIR/DataBase/certbkxp.dat       the restore map
 *     OUTDIR/Dynamic/<file>              CA certificates and CRLs
 *
 * certbkxp.dat is written in the format internal/backupset/doc.go defines,
 * so `certadm verify OUTDIR` and `certsrv restore OUTDIR` read the set.
 * OUTDIR must not exist or be empty. Every file is written as <name>.part,
 * fsynced, renamed and its directory fsynced, so a crash leaves either the
 * whole file or a .part file that marks the set incomplete.
 *
 * The credentials come from CERTADM_CREDS (a directory holding client.crt,
 * client.key and trust.crt with the Operator role). The library is loaded
 * from CERTADM_LIBRARY when set, else from the directory of this program,
 * else by the name libcertadm.so through the dynamic linker's search path.
 *
 * Build: gcc -std=c11 -O2 -Iinclude -Iexamples/c -o backup_scenario \
 *            examples/c/backup_scenario.c -ldl
 * Exit status: 0 when the backup was recorded by the CA, 1 on any failure,
 * 2 on a usage error.
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define CERTBCLI_NO_PROTOTYPES /* everything is reached through dlsym */
#include "certbcli.h"
#include "sha256.h"
#include "utf16.h"

/* The read buffer: one CertSrvBackupRead fills at most this much. */
#define READ_BUFFER_SIZE (1u << 20)

/* The functions of step 2. */
struct certadm {
    void *lib;
    FNCERTSRVISSERVERONLINEW *IsServerOnline;
    FNCERTSRVBACKUPPREPAREW *BackupPrepare;
    FNCERTSRVRESTOREGETDATABASELOCATIONSW *RestoreGetDatabaseLocations;
    FNCERTSRVBACKUPGETDATABASENAMESW *BackupGetDatabaseNames;
    FNCERTSRVBACKUPOPENFILEW *BackupOpenFile;
    FNCERTSRVBACKUPREAD *BackupRead;
    FNCERTSRVBACKUPCLOSE *BackupClose;
    FNCERTSRVBACKUPGETBACKUPLOGSW *BackupGetBackupLogs;
    FNCERTSRVBACKUPTRUNCATELOGS *BackupTruncateLogs;
    FNCERTSRVBACKUPGETDYNAMICFILELISTW *BackupGetDynamicFileList;
    FNCERTSRVBACKUPEND *BackupEnd;
    FNCERTSRVBACKUPFREE *BackupFree;
};

static void fail(const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    fputs("backup_scenario: ", stderr);
    vfprintf(stderr, format, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ---- Steps 1 and 2: load the library and find its functions ----------- */

static void *open_library(const char *argv0)
{
    const char *env = getenv("CERTADM_LIBRARY");
    if (env != NULL && env[0] != '\0')
        return dlopen(env, RTLD_NOW | RTLD_LOCAL);
    /* Next to this program, as the build puts both in one directory. */
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash != NULL && (size_t)(slash - self) + 1 + sizeof CERTADM_LIBRARY_NAME <= sizeof self) {
            strcpy(slash + 1, CERTADM_LIBRARY_NAME);
            if (access(self, R_OK) == 0)
                return dlopen(self, RTLD_NOW | RTLD_LOCAL);
        }
    }
    (void)argv0;
    return dlopen(CERTADM_LIBRARY_NAME, RTLD_NOW | RTLD_LOCAL);
}

/* find returns the address of an exported function, or NULL and a message. */
static void *find(void *lib, const char *name)
{
    dlerror();
    void *p = dlsym(lib, name);
    if (p == NULL)
        fail("dlsym %s: %s", name, dlerror());
    return p;
}

static int load(struct certadm *api, const char *argv0)
{
    memset(api, 0, sizeof *api);
    api->lib = open_library(argv0);                                                 /* step 1 */
    if (api->lib == NULL) {
        fail("load %s: %s", CERTADM_LIBRARY_NAME, dlerror());
        return -1;
    }
    /* Step 2. A cast through void * to a function pointer is what dlsym's
     * POSIX definition requires to work. */
    if ((api->IsServerOnline = (FNCERTSRVISSERVERONLINEW *)find(api->lib, "CertSrvIsServerOnlineW")) == NULL ||
        (api->BackupPrepare = (FNCERTSRVBACKUPPREPAREW *)find(api->lib, "CertSrvBackupPrepareW")) == NULL ||
        (api->RestoreGetDatabaseLocations = (FNCERTSRVRESTOREGETDATABASELOCATIONSW *)find(api->lib, "CertSrvRestoreGetDatabaseLocationsW")) == NULL ||
        (api->BackupGetDatabaseNames = (FNCERTSRVBACKUPGETDATABASENAMESW *)find(api->lib, "CertSrvBackupGetDatabaseNamesW")) == NULL ||
        (api->BackupOpenFile = (FNCERTSRVBACKUPOPENFILEW *)find(api->lib, "CertSrvBackupOpenFileW")) == NULL ||
        (api->BackupRead = (FNCERTSRVBACKUPREAD *)find(api->lib, "CertSrvBackupRead")) == NULL ||
        (api->BackupClose = (FNCERTSRVBACKUPCLOSE *)find(api->lib, "CertSrvBackupClose")) == NULL ||
        (api->BackupGetBackupLogs = (FNCERTSRVBACKUPGETBACKUPLOGSW *)find(api->lib, "CertSrvBackupGetBackupLogsW")) == NULL ||
        (api->BackupTruncateLogs = (FNCERTSRVBACKUPTRUNCATELOGS *)find(api->lib, "CertSrvBackupTruncateLogs")) == NULL ||
        (api->BackupGetDynamicFileList = (FNCERTSRVBACKUPGETDYNAMICFILELISTW *)find(api->lib, "CertSrvBackupGetDynamicFileListW")) == NULL ||
        (api->BackupEnd = (FNCERTSRVBACKUPEND *)find(api->lib, "CertSrvBackupEnd")) == NULL ||
        (api->BackupFree = (FNCERTSRVBACKUPFREE *)find(api->lib, "CertSrvBackupFree")) == NULL) {
        dlclose(api->lib);
        return -1;
    }
    return 0;
}

/* ---- Files on the backup medium ----------------------------------------- */

/* A file being written: <dir>/<name>.part, renamed to <dir>/<name>. */
struct outfile {
    int fd;
    char part[PATH_MAX];
    char final[PATH_MAX];
    const char *dir;
};

static int out_create(struct outfile *f, const char *dir, const char *name)
{
    f->dir = dir;
    f->fd = -1;
    if (snprintf(f->final, sizeof f->final, "%s/%s", dir, name) >= (int)sizeof f->final ||
        snprintf(f->part, sizeof f->part, "%s/%s.part", dir, name) >= (int)sizeof f->part) {
        fail("path too long: %s/%s", dir, name);
        return -1;
    }
    f->fd = open(f->part, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (f->fd < 0) {
        fail("create %s: %s", f->part, strerror(errno));
        return -1;
    }
    return 0;
}

static int out_write(struct outfile *f, const void *p, size_t n)
{
    const char *b = (const char *)p;
    while (n > 0) {
        ssize_t w = write(f->fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            fail("write %s: %s", f->part, strerror(errno));
            return -1;
        }
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

static int sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
        fail("sync directory %s: %s", dir, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

/* out_commit makes the file durable under its final name: fsync, close,
 * rename, fsync the directory. A crash before the rename leaves the .part
 * file; after it, the whole file. */
static int out_commit(struct outfile *f)
{
    if (fsync(f->fd) != 0) {
        fail("fsync %s: %s", f->part, strerror(errno));
        close(f->fd);
        return -1;
    }
    if (close(f->fd) != 0) {
        fail("close %s: %s", f->part, strerror(errno));
        return -1;
    }
    if (rename(f->part, f->final) != 0) {
        fail("rename %s: %s", f->part, strerror(errno));
        return -1;
    }
    return sync_dir(f->dir);
}

/* out_abort closes the file and leaves the .part file behind, marking the
 * set incomplete. */
static void out_abort(struct outfile *f) { close(f->fd); }

/* base_name returns the part of path after its last '/' when that is a
 * usable file name, else NULL. */
static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    if (base[0] == '\0' || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
        return NULL;
    return base;
}

/* ---- Steps 7 to 9: copy one file of the backup -------------------------- */

static int copy_file(struct certadm *api, HCSBC hbc, const WCHAR *name, const char *dir, unsigned char *buf)
{
    char *path = wstr_to_utf8(name);
    if (path == NULL) {
        fail("a listed name is not valid UTF-16");
        return -1;
    }
    const char *base = base_name(path);
    if (base == NULL) {
        fail("listed name %s has no file name", path);
        free(path);
        return -1;
    }
    LARGE_INTEGER size;
    HRESULT hr = api->BackupOpenFile(hbc, name, READ_BUFFER_SIZE, &size);          /* step 7 */
    if (FAILED(hr)) {
        fail("CertSrvBackupOpenFileW %s: 0x%08X", path, (unsigned)hr);
        free(path);
        return -1;
    }
    struct outfile out;
    out.fd = -1;
    int rc = out_create(&out, dir, base);
    int64_t total = 0;
    while (rc == 0 && total < size.QuadPart) {
        DWORD got = 0;
        hr = api->BackupRead(hbc, buf, READ_BUFFER_SIZE, &got);                    /* step 8 */
        if (FAILED(hr)) {
            fail("CertSrvBackupRead %s at byte %lld: 0x%08X", path, (long long)total, (unsigned)hr);
            rc = -1;
        } else if (got == 0) {
            fail("%s ended after %lld of %lld bytes", path, (long long)total, (long long)size.QuadPart);
            rc = -1;
        } else {
            rc = out_write(&out, buf, got);
            total += got;
        }
    }
    if (rc == 0)
        rc = out_commit(&out);
    else if (out.fd >= 0)
        out_abort(&out);
    hr = api->BackupClose(hbc);                                                     /* step 9 */
    if (FAILED(hr) && rc == 0) {
        fail("CertSrvBackupClose %s: 0x%08X", path, (unsigned)hr);
        rc = -1;
    }
    if (rc == 0)
        printf("  %s: %lld bytes\n", base, (long long)total);
    free(path);
    return rc;
}

/* copy_list copies every file of a list, checking each entry's tag. */
static int copy_list(struct certadm *api, HCSBC hbc, const WCHAR *list, CSBFT want, const char *dir, unsigned char *buf)
{
    for (const WCHAR *p = list; *p != 0; p += wstr_len(p) + 1) {
        if (p[0] != want) {
            fail("list entry with tag 0x%02X, expected 0x%02X", (unsigned)p[0], (unsigned)want);
            return -1;
        }
        if (copy_file(api, hbc, p + 1, dir, buf) != 0)
            return -1;
    }
    return 0;
}

/* ---- Step 5: the restore map as DataBase/certbkxp.dat ------------------- */

static int write_restore_map(const WCHAR *list, const char *dir)
{
    size_t cap = 4096, len = 0;
    char *text = (char *)malloc(cap);
    int rc = 0;
    if (text == NULL) {
        fail("out of memory");
        return -1;
    }
    len = (size_t)snprintf(text, cap, "certsrv-restore-map 1\n");
    for (const WCHAR *p = list; *p != 0 && rc == 0; p += wstr_len(p) + 1) {
        char *path = wstr_to_utf8(p + 1);
        if (path == NULL || p[0] > 0xFF || path[0] != '/' || strpbrk(path, "\r\n") != NULL) {
            fail("restore map entry with tag 0x%02X is not an absolute path", (unsigned)p[0]);
            rc = -1;
        } else {
            size_t need = len + strlen(path) + 5;
            if (need > cap) {
                cap = 2 * need;
                char *bigger = (char *)realloc(text, cap);
                if (bigger == NULL) {
                    fail("out of memory");
                    rc = -1;
                } else {
                    text = bigger;
                }
            }
            if (rc == 0)
                len += (size_t)snprintf(text + len, cap - len, "%02X %s\n", (unsigned)p[0], path);
        }
        free(path);
    }
    if (rc == 0) {
        struct sha256 h;
        unsigned char digest[32];
        char hex[65];
        sha256_init(&h);
        sha256_update(&h, text, len);
        sha256_final(&h, digest);
        sha256_hex(digest, hex);
        struct outfile out;
        rc = out_create(&out, dir, "certbkxp.dat");
        if (rc == 0) {
            if (out_write(&out, text, len) != 0 || out_write(&out, "sha256 ", 7) != 0 ||
                out_write(&out, hex, 64) != 0 || out_write(&out, "\n", 1) != 0) {
                out_abort(&out);
                rc = -1;
            } else {
                rc = out_commit(&out);
            }
        }
    }
    free(text);
    return rc;
}

/* ---- Step 13: fetch a dynamic file over HTTP ----------------------------- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* url_file_name percent-decodes the last path segment of url into name. */
static int url_file_name(const char *url, char *name, size_t cap)
{
    const char *q = strpbrk(url, "?#");
    size_t end = q ? (size_t)(q - url) : strlen(url);
    size_t start = end;
    while (start > 0 && url[start - 1] != '/')
        start--;
    size_t o = 0;
    for (size_t i = start; i < end; i++) {
        int c = (unsigned char)url[i];
        if (c == '%' && i + 2 < end && hexval(url[i + 1]) >= 0 && hexval(url[i + 2]) >= 0) {
            c = hexval(url[i + 1]) * 16 + hexval(url[i + 2]);
            i += 2;
        }
        if (c == '/' || c == '\0' || o + 1 >= cap)
            return -1;
        name[o++] = (char)c;
    }
    name[o] = '\0';
    return base_name(name) == name ? 0 : -1;
}

/* http_get fetches an http:// URL with HTTP/1.0 and writes the body of a
 * 200 answer to out. */
static int http_get(const char *url, struct outfile *out)
{
    char host[256], port[16] = "80";
    const char *p = url + 7, *path, *colon;
    if (strncmp(url, "http://", 7) != 0) {
        fail("%s: only http:// URLs are supported", url);
        return -1;
    }
    path = strchr(p, '/');
    if (path == NULL)
        path = p + strlen(p);
    colon = memchr(p, ':', (size_t)(path - p));
    size_t hostlen = (size_t)((colon ? colon : path) - p);
    if (hostlen == 0 || hostlen >= sizeof host || (colon && (size_t)(path - colon - 1) >= sizeof port)) {
        fail("%s: bad host", url);
        return -1;
    }
    memcpy(host, p, hostlen);
    host[hostlen] = '\0';
    if (colon) {
        memcpy(port, colon + 1, (size_t)(path - colon - 1));
        port[path - colon - 1] = '\0';
    }
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = SOCK_STREAM;
    int err = getaddrinfo(host, port, &hints, &res);
    if (err != 0) {
        fail("%s: %s", url, gai_strerror(err));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        fail("%s: connect: %s", url, strerror(errno));
        return -1;
    }
    char req[2048];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: %s:%s\r\nConnection: close\r\n\r\n", *path ? path : "/", host, port);
    if (n <= 0 || n >= (int)sizeof req || write(fd, req, (size_t)n) != n) {
        fail("%s: send request failed", url);
        close(fd);
        return -1;
    }
    /* Read the whole answer; dynamic files are small (certificates, CRLs). */
    size_t cap = 65536, len = 0;
    char *resp = (char *)malloc(cap);
    int rc = 0;
    for (;;) {
        if (resp == NULL) {
            fail("out of memory");
            rc = -1;
            break;
        }
        if (len == cap) {
            char *bigger = (cap >= (64u << 20)) ? NULL : (char *)realloc(resp, cap * 2);
            if (bigger == NULL) {
                fail("%s: answer too large", url);
                rc = -1;
                break;
            }
            resp = bigger;
            cap *= 2;
        }
        ssize_t r = read(fd, resp + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            fail("%s: read: %s", url, strerror(errno));
            rc = -1;
            break;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    if (rc == 0) {
        char *body = NULL;
        for (size_t i = 0; i + 3 < len; i++) {
            if (memcmp(resp + i, "\r\n\r\n", 4) == 0) {
                body = resp + i + 4;
                break;
            }
        }
        if (body == NULL || len < 12 || memcmp(resp, "HTTP/1.", 7) != 0 || memcmp(resp + 8, " 200", 4) != 0) {
            fail("%s: no 200 answer", url);
            rc = -1;
        } else {
            size_t bodylen = len - (size_t)(body - resp);
            /* A Content-Length header, when present, must match. */
            for (char *h = strstr(resp, "\r\n"); h != NULL && h < body - 2; h = strstr(h + 2, "\r\n")) {
                if (strncasecmp(h + 2, "Content-Length:", 15) == 0 && strtoull(h + 17, NULL, 10) != bodylen) {
                    fail("%s: body of %zu bytes, Content-Length says otherwise", url, bodylen);
                    rc = -1;
                }
            }
            if (rc == 0)
                rc = out_write(out, body, bodylen);
        }
    }
    free(resp);
    return rc;
}

static int fetch_dynamic(const WCHAR *list, const char *dir)
{
    for (const WCHAR *p = list; *p != 0; p += wstr_len(p) + 1) {
        char *url = wstr_to_utf8(p);
        char name[NAME_MAX + 1];
        int rc = -1;
        if (url == NULL || url_file_name(url, name, sizeof name) != 0) {
            fail("dynamic file entry %s has no usable file name", url ? url : "(invalid UTF-16)");
        } else {
            struct outfile out;
            if (out_create(&out, dir, name) == 0) {
                if (http_get(url, &out) == 0) {
                    rc = out_commit(&out);
                } else {
                    out_abort(&out);
                }
            }
            if (rc == 0)
                printf("  %s <- %s\n", name, url);
        }
        free(url);
        if (rc != 0)
            return -1;
    }
    return 0;
}

/* ---- The scenario -------------------------------------------------------- */

static int make_dir(const char *path)
{
    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
        fail("mkdir %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* empty_or_missing reports whether dir does not exist or is an empty
 * directory. */
static int empty_or_missing(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return errno == ENOENT;
    int empty = 1;
    for (struct dirent *e; empty && (e = readdir(d)) != NULL;)
        empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
    closedir(d);
    return empty;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: backup_scenario HOST:PORT OUTDIR\n");
        return 2;
    }
    const char *outdir = argv[2];
    char dbdir[PATH_MAX], dyndir[PATH_MAX];
    if (snprintf(dbdir, sizeof dbdir, "%s/DataBase", outdir) >= (int)sizeof dbdir ||
        snprintf(dyndir, sizeof dyndir, "%s/Dynamic", outdir) >= (int)sizeof dyndir) {
        fail("OUTDIR too long");
        return 2;
    }
    if (!empty_or_missing(outdir)) {
        fail("%s exists and is not an empty directory", outdir);
        return 2;
    }
    WCHAR *server = wstr_from_utf8(argv[1]);
    if (server == NULL) {
        fail("HOST:PORT is not valid UTF-8");
        return 2;
    }

    struct certadm api;
    if (load(&api, argv[0]) != 0) {                                                 /* steps 1, 2 */
        free(server);
        return 1;
    }

    int rc = 1;
    HRESULT hr;
    HCSBC hbc = NULL;
    WCHAR *locations = NULL, *databases = NULL, *logs = NULL, *dynamic = NULL;
    DWORD cbLocations = 0, cbDatabases = 0, cbLogs = 0, cbDynamic = 0;
    unsigned char *buf = (unsigned char *)malloc(READ_BUFFER_SIZE);
    if (buf == NULL) {
        fail("out of memory");
        goto unload;
    }

    BOOL online = FALSE;
    hr = api.IsServerOnline(server, &online);                                       /* step 3 */
    if (FAILED(hr) || !online) {
        fail("CertSrvIsServerOnlineW %s: 0x%08X, online %d", argv[1], (unsigned)hr, online);
        goto unload;
    }
    printf("step 3: %s is online\n", argv[1]);

    hr = api.BackupPrepare(server, 0, CSBACKUP_TYPE_FULL, &hbc);                    /* step 4 */
    if (FAILED(hr)) {
        fail("CertSrvBackupPrepareW: 0x%08X", (unsigned)hr);
        goto unload;
    }
    printf("step 4: full backup prepared\n");
    if (make_dir(outdir) != 0 || make_dir(dbdir) != 0 || make_dir(dyndir) != 0)
        goto end;

    hr = api.RestoreGetDatabaseLocations(hbc, &locations, &cbLocations);            /* step 5 */
    if (FAILED(hr)) {
        fail("CertSrvRestoreGetDatabaseLocationsW: 0x%08X", (unsigned)hr);
        goto end;
    }
    if (write_restore_map(locations, dbdir) != 0)
        goto end;
    printf("step 5: restore map saved as DataBase/certbkxp.dat (%u bytes of list)\n", (unsigned)cbLocations);

    hr = api.BackupGetDatabaseNames(hbc, &databases, &cbDatabases);                 /* step 6 */
    if (FAILED(hr)) {
        fail("CertSrvBackupGetDatabaseNamesW: 0x%08X", (unsigned)hr);
        goto end;
    }
    printf("steps 6-9: database files\n");
    if (copy_list(&api, hbc, databases, CSBFT_CERTSERVER_DATABASE, dbdir, buf) != 0) /* steps 7-9 */
        goto end;

    hr = api.BackupGetBackupLogs(hbc, &logs, &cbLogs);                              /* step 10 */
    if (FAILED(hr)) {
        fail("CertSrvBackupGetBackupLogsW: 0x%08X", (unsigned)hr);
        goto end;
    }
    printf("step 10: log files\n");
    if (copy_list(&api, hbc, logs, CSBFT_LOG, dbdir, buf) != 0)                     /* steps 7-9 */
        goto end;

    hr = api.BackupTruncateLogs(hbc);                                               /* step 11 */
    if (FAILED(hr)) {
        fail("CertSrvBackupTruncateLogs: 0x%08X", (unsigned)hr);
        goto end;
    }
    printf("step 11: %s\n", hr == S_FALSE ? "no log file could be truncated yet" : "log files truncated");

    hr = api.BackupGetDynamicFileList(hbc, &dynamic, &cbDynamic);                   /* step 12 */
    if (FAILED(hr)) {
        fail("CertSrvBackupGetDynamicFileListW: 0x%08X", (unsigned)hr);
        goto end;
    }
    printf("steps 12-13: dynamic files\n");
    if (fetch_dynamic(dynamic, dyndir) != 0)                                        /* step 13 */
        goto end;
    rc = 0;

end:
    hr = api.BackupEnd(hbc);                                                        /* step 14 */
    if (FAILED(hr)) {
        fail("CertSrvBackupEnd: 0x%08X", (unsigned)hr);
        rc = 1;
    } else if (rc == 0) {
        printf("step 14: backup ended and recorded\n");
    }
    api.BackupFree(locations);                                                      /* step 15 */
    api.BackupFree(databases);
    api.BackupFree(logs);
    api.BackupFree(dynamic);

unload:
    dlclose(api.lib);                                                               /* step 16 */
    free(buf);
    free(server);
    if (rc == 0)
        printf("backup complete: %s\n", outdir);
    return rc;
}

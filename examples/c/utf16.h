/*
 * utf16.h — conversions between the UTF-16 strings of certbcli.h (WCHAR)
 * and UTF-8 (char), for the certsrv C examples and tests. Header only;
 * include certbcli.h first.
 *
 * Both conversions return memory from malloc, which the caller frees with
 * free(3) (not CertSrvBackupFree: that is only for what the library
 * allocates). They return NULL when memory runs out or the input is not
 * valid (an unpaired surrogate, a malformed or overlong UTF-8 sequence, a
 * code point above U+10FFFF or in the surrogate range).
 */
#ifndef CERTSRV_EXAMPLES_UTF16_H
#define CERTSRV_EXAMPLES_UTF16_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/* wstr_len returns the number of code units before the terminating zero. */
static inline size_t wstr_len(const WCHAR *s)
{
    size_t n = 0;
    while (s[n] != 0)
        n++;
    return n;
}

/* wstr_to_utf8 converts the zero-terminated UTF-16 string s to UTF-8. */
static inline char *wstr_to_utf8(const WCHAR *s)
{
    size_t n = wstr_len(s);
    char *out = (char *)malloc(3 * n + 1); /* a unit never needs more than 3 bytes */
    size_t o = 0;
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = s[i];
        if (c >= 0xD800 && c <= 0xDBFF) {
            if (i + 1 >= n || s[i + 1] < 0xDC00 || s[i + 1] > 0xDFFF) {
                free(out);
                return NULL;
            }
            c = 0x10000 + ((c - 0xD800) << 10) + (uint32_t)(s[i + 1] - 0xDC00);
            i++;
        } else if (c >= 0xDC00 && c <= 0xDFFF) {
            free(out);
            return NULL;
        }
        if (c < 0x80) {
            out[o++] = (char)c;
        } else if (c < 0x800) {
            out[o++] = (char)(0xC0 | (c >> 6));
            out[o++] = (char)(0x80 | (c & 0x3F));
        } else if (c < 0x10000) {
            out[o++] = (char)(0xE0 | (c >> 12));
            out[o++] = (char)(0x80 | ((c >> 6) & 0x3F));
            out[o++] = (char)(0x80 | (c & 0x3F));
        } else {
            /* a surrogate pair: two units in, four bytes out */
            out[o++] = (char)(0xF0 | (c >> 18));
            out[o++] = (char)(0x80 | ((c >> 12) & 0x3F));
            out[o++] = (char)(0x80 | ((c >> 6) & 0x3F));
            out[o++] = (char)(0x80 | (c & 0x3F));
        }
    }
    out[o] = '\0';
    return out;
}

/* wstr_from_utf8 converts the zero-terminated UTF-8 string s to UTF-16. */
static inline WCHAR *wstr_from_utf8(const char *s)
{
    size_t n = 0;
    while (s[n] != '\0')
        n++;
    WCHAR *out = (WCHAR *)malloc((n + 1) * sizeof(WCHAR)); /* never more units than bytes */
    size_t o = 0;
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n;) {
        const unsigned char *p = (const unsigned char *)s + i;
        uint32_t c;
        size_t len;
        if (p[0] < 0x80) {
            c = p[0];
            len = 1;
        } else if ((p[0] & 0xE0) == 0xC0) {
            c = p[0] & 0x1F;
            len = 2;
        } else if ((p[0] & 0xF0) == 0xE0) {
            c = p[0] & 0x0F;
            len = 3;
        } else if ((p[0] & 0xF8) == 0xF0) {
            c = p[0] & 0x07;
            len = 4;
        } else {
            free(out);
            return NULL;
        }
        if (i + len > n) {
            free(out);
            return NULL;
        }
        for (size_t k = 1; k < len; k++) {
            if ((p[k] & 0xC0) != 0x80) {
                free(out);
                return NULL;
            }
            c = (c << 6) | (p[k] & 0x3F);
        }
        if ((len == 2 && c < 0x80) || (len == 3 && c < 0x800) || (len == 4 && c < 0x10000) ||
            c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) {
            free(out);
            return NULL;
        }
        if (c >= 0x10000) {
            c -= 0x10000;
            out[o++] = (WCHAR)(0xD800 + (c >> 10));
            out[o++] = (WCHAR)(0xDC00 + (c & 0x3FF));
        } else {
            out[o++] = (WCHAR)c;
        }
        i += len;
    }
    out[o] = 0;
    return out;
}

#endif /* CERTSRV_EXAMPLES_UTF16_H */

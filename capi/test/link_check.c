/*
 * link_check — links against libcertadm.so directly (gcc ... -lcertadm),
 * without dlopen, through the prototypes of certbcli.h. It proves that the
 * header's declarations name the library's exports and that a program can
 * use either way of loading it. capi_test.go builds and runs it.
 */
#include <stdio.h>

#include "certbcli.h"

int main(void)
{
    BOOL online = TRUE;
    HCSBC h = (HCSBC)1;
    int bad = 0;
    /* Each call fails on its arguments before any network traffic. */
    bad += CertSrvIsServerOnlineW(NULL, &online) != E_POINTER || online != FALSE;
    bad += CertSrvBackupPrepareW(NULL, 0, CSBACKUP_TYPE_FULL, &h) != E_POINTER || h != NULL;
    bad += CertSrvBackupEnd(NULL) != E_HANDLE;
    bad += CertSrvRestoreEnd(NULL) != E_HANDLE;
    bad += CertSrvServerControlW(NULL, CSCONTROL_SHUTDOWN, NULL, NULL) != E_POINTER;
    CertSrvBackupFree(NULL);
    printf("link_check: %s\n", bad ? "FAILED" : "ok");
    return bad ? 1 : 0;
}

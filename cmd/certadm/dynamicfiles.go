package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/certsrv/certsrv/certadm"
)

func newDynamicFilesCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "dynamic-files",
		Short: "Print the dynamic files (CA certificates, CRLs) and their URLs (Operator)",
		Long: `Print the dynamic files (CertSrvBackupGetDynamicFileList): one line per file,
its name, a tab, and the HTTP URL it is fetched from. The command opens a
full backup session, lists, and aborts it.`,
		Args: cobra.NoArgs,
		RunE: a.action(func(ctx context.Context, args []string) error {
			return a.inBackupSession(ctx, "dynamic-files", func(b *certadm.BackupContext) error {
				files, err := b.DynamicFiles(ctx)
				if err != nil {
					return err
				}
				for _, f := range files {
					a.printf("%s\t%s\n", displayName(f), f.URL)
				}
				return nil
			})
		}),
	}
}

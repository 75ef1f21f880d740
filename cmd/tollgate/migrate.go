package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"tollgate/store/postgres"
	"tollgate/store/sqlite"
)

const migrateSummary = "apply the database migrations (idempotent) and print the schema version"

const migrateHelp = `Apply every embedded migration the ledger database has not seen yet, each
recorded in schema_migrations, and print what the schema now holds. Running
it again changes nothing. Without --database-url it migrates (creating if
needed) the SQLite ledger under --data; with it, the PostgreSQL database at
that URL (several instances may run it at once: an advisory lock makes each
migration apply exactly once). serve also migrates at start-up.`

func init() {
	register("migrate", migrateSummary, runMigrate)
}

func migrateFlagSet() (*flag.FlagSet, ledgerFlags) {
	fs := newFlagSet("migrate", migrateHelp)
	return fs, addLedgerFlags(fs)
}

func init() {
	deploymentFlagSets = append(deploymentFlagSets, func() *flag.FlagSet { fs, _ := migrateFlagSet(); return fs })
}

func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, lf := migrateFlagSet()
	fs.SetOutput(stderr)
	data, databaseURL := lf.data, lf.databaseURL
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *databaseURL != "" {
		return migratePostgres(ctx, *databaseURL, stdout)
	}
	return migrateSQLite(ctx, filepath.Join(*data, sqlite.FileName), stdout)
}

func migrateSQLite(ctx context.Context, path string, stdout io.Writer) error {
	_, statErr := os.Stat(path)
	st, err := sqlite.Open(ctx, path) // Open applies pending migrations
	if err != nil {
		return fmt.Errorf("migrate sqlite ledger %s: %w", path, err)
	}
	defer st.Close()
	if _, err := st.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate sqlite ledger %s: %w", path, err)
	}
	applied, err := st.AppliedMigrations(ctx)
	if err != nil {
		return err
	}
	if os.IsNotExist(statErr) {
		fmt.Fprintf(stdout, "created %s\n", path)
	}
	fmt.Fprintf(stdout, "sqlite ledger %s:\n", path)
	for _, m := range applied {
		fmt.Fprintf(stdout, "  %04d_%s  applied %s\n", m.Version, m.Name, m.AppliedAt.Format("2006-01-02 15:04:05Z"))
	}
	if len(applied) > 0 {
		fmt.Fprintf(stdout, "schema version %d\n", applied[len(applied)-1].Version)
	}
	return nil
}

func migratePostgres(ctx context.Context, url string, stdout io.Writer) error {
	st, err := postgres.Open(ctx, url, postgres.WithoutMigrate())
	if err != nil {
		return fmt.Errorf("migrate postgres ledger: %w", err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate postgres ledger: %w", err)
	}
	fmt.Fprintln(stdout, "postgres ledger: every migration is applied")
	return nil
}

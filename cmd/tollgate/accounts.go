package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"tollgate/auth"
	"tollgate/ledger"
	"tollgate/store/postgres"
	"tollgate/store/sqlite"
)

const accountsSummary = "manage accounts: 'accounts create' makes one and prints its API key once"

func init() {
	register("accounts", accountsSummary, runAccounts)
}

func accountsFlagSet() (fs *flag.FlagSet, data, databaseURL *string) {
	fs = newFlagSet("accounts create", accountsSummary)
	data = fs.String("data", "./tollgate-data", "data directory of the SQLite database")
	databaseURL = fs.String("database-url", "", "PostgreSQL URL; when set, --data is not used")
	return fs, data, databaseURL
}

func init() {
	deploymentFlagSets = append(deploymentFlagSets, func() *flag.FlagSet { fs, _, _ := accountsFlagSet(); return fs })
}

// runAccounts dispatches `tollgate accounts <action>`.
func runAccounts(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprintln(stdout, "Usage: tollgate accounts create [--data DIR | --database-url URL]\n\n"+accountsSummary+
			".\nRun 'tollgate accounts create --help' for its flags.")
		return nil
	}
	if len(args) == 0 || args[0] != "create" {
		fmt.Fprintln(stderr, "Usage: tollgate accounts create [--data DIR | --database-url URL]")
		return errors.New("accounts: the only action is create")
	}
	fs, data, dbURL := accountsFlagSet()
	fs.SetOutput(stderr)
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	var st interface {
		ledger.Store
		auth.Store
	}
	if *dbURL != "" {
		pg, err := postgres.Open(ctx, *dbURL)
		if err != nil {
			return fmt.Errorf("accounts: %w", err)
		}
		st = pg
	} else {
		sq, err := sqlite.Open(ctx, filepath.Join(*data, sqlite.FileName))
		if err != nil {
			return fmt.Errorf("accounts: %w", err)
		}
		st = sq
	}
	defer st.Close()
	led := ledger.New(st, ledger.Options{})
	defer led.Close()
	c, err := (&auth.Service{Store: st, Accounts: led}).CreateAccount(ctx)
	if err != nil {
		return fmt.Errorf("accounts: %w", err)
	}
	fmt.Fprintf(stdout, "account_id: %s\napi_key:    %s\nkey_id:     %s\n", c.Account, c.APIKey, c.Key.ID)
	fmt.Fprintln(stdout, "The API key is shown only now; tollgate keeps only its hash.")
	return nil
}

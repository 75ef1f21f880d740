package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	"tollgate/catalog"
)

const catalogSummary = "check a catalog file: 'catalog check FILE' names every problem with its path in the file"

const catalogUsage = `Usage: tollgate catalog check FILE

Checks the catalog FILE (YAML or JSON, as serve --catalog reads it) and
prints every problem with its path in the file, or what it holds.
Exit status: 0 when the catalog is valid, 1 when it is not or cannot be read.
The providers' API key variables are not needed: serve checks them.`

func init() {
	register("catalog", catalogSummary, runCatalog)
}

// runCatalog runs `tollgate catalog check FILE`.
func runCatalog(_ context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprintln(stdout, catalogUsage)
		return nil
	}
	if len(args) != 2 || args[0] != "check" {
		fmt.Fprintln(stderr, catalogUsage)
		return errors.New("catalog: want 'catalog check FILE'")
	}
	c, err := catalog.Load(args[1])
	var ce *catalog.Error
	if errors.As(err, &ce) {
		fmt.Fprintf(stdout, "%s: %d problem(s):\n", args[1], len(ce.Problems))
		for _, p := range ce.Problems {
			fmt.Fprintf(stdout, "  %s\n", p)
		}
		return &exitStatusError{code: 1, err: fmt.Errorf("catalog %s is not valid", args[1])}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: ok\n", args[1])
	fmt.Fprintf(stdout, "  digest:     sha256:%s\n", c.Digest)
	fmt.Fprintf(stdout, "  merchant:   %s\n", c.Name())
	fmt.Fprintf(stdout, "  models:     %s\n", strings.Join(slices.Sorted(maps.Keys(c.Gateway.Models)), ", "))
	fmt.Fprintf(stdout, "  advertised: %s\n", strings.Join(c.Advertised, ", "))
	var pk []string
	for _, p := range c.Pricing.Packages {
		pk = append(pk, fmt.Sprintf("%s (%s CNY, %d credits)", p.ID, p.Fen, p.Credits))
	}
	fmt.Fprintf(stdout, "  packages:   %s\n", strings.Join(pk, ", "))
	for _, p := range c.Gateway.Providers {
		if p.APIKeyEnv != "" && os.Getenv(p.APIKeyEnv) == "" {
			fmt.Fprintf(stdout, "  note: %s is not set here; serve needs it for provider %q\n", p.APIKeyEnv, p.Name)
		}
	}
	return nil
}

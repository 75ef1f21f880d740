// Command tollgate sells LLM API access paid for with WeChat Pay. It is one
// binary with subcommands; main only parses the command line, handles
// signals and runs the chosen subcommand.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// command is one subcommand: its one-line summary and its entry point.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// commands lists every subcommand. Each lives in its own file.
var commands = map[string]command{}

func register(name, summary string, run func(ctx context.Context, args []string, stdout, stderr io.Writer) error) {
	commands[name] = command{summary: summary, run: run}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	tuneRuntime = len(os.Args) > 1 && os.Args[1] == "serve"
	err := Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "tollgate:", err)
		// A subcommand may say how it failed (reconcile: 1 differences, 2 errors).
		var ec interface{ ExitCode() int }
		if errors.As(err, &ec) {
			os.Exit(ec.ExitCode())
		}
		os.Exit(1)
	}
}

// Run runs the subcommand named by args[0]. Tests call it directly.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return errors.New("no subcommand given")
		}
		return nil
	}
	if args[0] == "--version" || args[0] == "-version" {
		args = []string{"version"}
	}
	cmd, ok := commands[args[0]]
	if !ok {
		usage(stderr)
		return fmt.Errorf("unknown subcommand %q", args[0])
	}
	return cmd.run(ctx, args[1:], stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "tollgate: LLM API access paid with WeChat Pay.")
	fmt.Fprintln(w, "\nUsage: tollgate <subcommand> [flags]\n\nSubcommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'tollgate <subcommand> --help' for its flags. Every flag also reads")
	fmt.Fprintln(w, "TOLLGATE_<FLAG> from the environment (dashes become underscores) and a key")
	fmt.Fprintln(w, "of --config FILE; sandbox, mockllm and demo read TOLLGATE_SANDBOX_<FLAG>,")
	fmt.Fprintln(w, "TOLLGATE_MOCKLLM_<FLAG> and TOLLGATE_DEMO_<FLAG>. 'tollgate --version'")
	fmt.Fprintln(w, "prints the version.")
}

package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

const versionSummary = "print the version: module version, VCS revision, Go version (also --version)"

func init() {
	register("version", versionSummary, runVersion)
}

func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version", versionSummary)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("version: unexpected arguments %v", fs.Args())
	}
	info, _ := debug.ReadBuildInfo()
	fmt.Fprintln(stdout, versionLine(info))
	return nil
}

// versionLine describes the build: "tollgate v1.2.3 (rev 0123abcd,
// 2025-01-02T03:04:05Z, modified) go1.26.0 linux/amd64". A binary built
// outside a module or a VCS checkout says "(devel)" and leaves the
// revision out.
func versionLine(info *debug.BuildInfo) string {
	version, rev, when, modified := "(devel)", "", "", false
	if info != nil {
		if v := info.Main.Version; v != "" {
			version = v
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				when = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	line := "tollgate " + version
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		line += " (rev " + rev
		if when != "" {
			line += ", " + when
		}
		if modified {
			line += ", modified"
		}
		line += ")"
	}
	return line + " " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH
}

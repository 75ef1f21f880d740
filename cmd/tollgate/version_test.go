package main

import (
	"bytes"
	"context"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionLine(t *testing.T) {
	info := &debug.BuildInfo{Main: debug.Module{Path: "tollgate", Version: "v1.2.3"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.time", Value: "2025-01-02T03:04:05Z"}, {Key: "vcs.modified", Value: "true"}}}
	want := "tollgate v1.2.3 (rev 0123456789ab, 2025-01-02T03:04:05Z, modified) " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH
	if got := versionLine(info); got != want {
		t.Errorf("%q\nwant %q", got, want)
	}
	if got := versionLine(nil); !strings.HasPrefix(got, "tollgate (devel) go") {
		t.Errorf("no build info: %q", got)
	}
}

// Both `tollgate version` and `tollgate --version` print the version line.
func TestVersionCommand(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}, {"-version"}} {
		var out bytes.Buffer
		if err := Run(context.Background(), args, &out, io.Discard); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if !strings.HasPrefix(out.String(), "tollgate ") || !strings.Contains(out.String(), runtime.Version()) {
			t.Errorf("%v printed %q", args, out.String())
		}
	}
}

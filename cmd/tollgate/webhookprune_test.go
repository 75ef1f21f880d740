package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

// TestWebhookRetentionFlag: --webhook-retention defaults to 30 days, 0
// keeps webhook events forever, and a negative one is refused naming the
// flag.
func TestWebhookRetentionFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want time.Duration
		err  string
	}{
		{nil, 720 * time.Hour, ""},
		{[]string{"--webhook-retention", "0"}, 0, ""},
		{[]string{"--webhook-retention", "48h"}, 48 * time.Hour, ""},
		{[]string{"--webhook-retention", "-1h"}, 0, "--webhook-retention must not be negative"},
	} {
		m := NewMain(io.Discard, io.Discard)
		err := m.ParseFlags(tc.args)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v: %v, want an error saying %q", tc.args, err, tc.err)
			}
		case err != nil:
			t.Errorf("%v: %v", tc.args, err)
		case m.Config.WebhookRetention != tc.want:
			t.Errorf("%v: retention %v, want %v", tc.args, m.Config.WebhookRetention, tc.want)
		}
	}
}

// TestUsageRetentionFlag: --usage-retention defaults to 0 (keep every
// usage record); a negative one or one under a day is refused naming the
// flag.
func TestUsageRetentionFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want time.Duration
		err  string
	}{
		{nil, 0, ""},
		{[]string{"--usage-retention", "0"}, 0, ""},
		{[]string{"--usage-retention", "2160h"}, 2160 * time.Hour, ""},
		{[]string{"--usage-retention", "-1h"}, 0, "--usage-retention must be 0"},
		{[]string{"--usage-retention", "1h"}, 0, "--usage-retention must be 0"},
	} {
		m := NewMain(io.Discard, io.Discard)
		err := m.ParseFlags(tc.args)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v: %v, want an error saying %q", tc.args, err, tc.err)
			}
		case err != nil:
			t.Errorf("%v: %v", tc.args, err)
		case m.Config.UsageRetention != tc.want:
			t.Errorf("%v: retention %v, want %v", tc.args, m.Config.UsageRetention, tc.want)
		}
	}
}

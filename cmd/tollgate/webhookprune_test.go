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

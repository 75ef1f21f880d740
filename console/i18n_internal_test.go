package console

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// Both languages have every text.
func TestMessagesComplete(t *testing.T) {
	for k := range messages[langEN] {
		if _, ok := messages[langZH][k]; !ok {
			t.Errorf("%q has no Chinese text", k)
		}
	}
	for k := range messages[langZH] {
		if _, ok := messages[langEN][k]; !ok {
			t.Errorf("%q has no English text", k)
		}
	}
}

// Every text a template or handler asks for exists.
func TestTemplateKeysExist(t *testing.T) {
	re := regexp.MustCompile(`(?:\.T|T) "([a-z.]+)"|c\.msg\(r, "([a-z.]+)"\)|"((?:title|err|login)\.[a-z]+)"`)
	files, _ := filepath.Glob("templates/*.html")
	files = append(files, "handlers.go", "pages.go", "webhooks.go")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			k := m[1] + m[2] + m[3]
			if _, ok := messages[langEN][k]; !ok {
				t.Errorf("%s asks for %q, which has no text", f, k)
			}
		}
	}
}

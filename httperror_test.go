package tollgate_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"tollgate"
)

// declaredCodes returns the value of every E* string constant declared in
// the root package's source: the error codes.
func declaredCodes(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	name := regexp.MustCompile(`^E[A-Z]+$`)
	var codes []string
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		file, err := parser.ParseFile(fset, f, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, s := range g.Specs {
				vs := s.(*ast.ValueSpec)
				for i, id := range vs.Names {
					if !name.MatchString(id.Name) || i >= len(vs.Values) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						t.Fatalf("%s: error code %s is not a string literal", f, id.Name)
					}
					v, _ := strconv.Unquote(lit.Value)
					codes = append(codes, v)
				}
			}
		}
	}
	slices.Sort(codes)
	return codes
}

// TestHTTPErrorsCoverEveryCode fails when an error code is declared
// without a row in the HTTP table (or a row names no declared code).
func TestHTTPErrorsCoverEveryCode(t *testing.T) {
	declared := declaredCodes(t)
	if len(declared) < 10 {
		t.Fatalf("found only %d error codes in the source: %v", len(declared), declared)
	}
	if got := tollgate.ErrorCodes(); !slices.Equal(got, declared) {
		t.Fatalf("codes with an HTTP row %v, declared codes %v", got, declared)
	}
	for _, c := range declared {
		h, ok := tollgate.HTTPErrorOf(c)
		if !ok || h.Status < 400 || h.OpenAIType == "" || h.AnthropicType == "" || h.ModelCode == "" {
			t.Errorf("%s: incomplete row %+v", c, h)
		}
	}
	if h, ok := tollgate.HTTPErrorOf("no_such_code"); ok || h.Status != 500 {
		t.Errorf("unknown code: %+v, %v; want the internal row, false", h, ok)
	}
}

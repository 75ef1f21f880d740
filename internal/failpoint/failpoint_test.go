package failpoint_test

import (
	"errors"
	"testing"

	"tollgate/internal/failpoint"
)

func TestSetAndInject(t *testing.T) {
	t.Cleanup(func() { _ = failpoint.Set("") })
	if err := failpoint.Set("a=error,b=2*error,c=sleep(1ms)"); err != nil {
		t.Fatal(err)
	}
	if err := failpoint.Inject("a"); !errors.Is(err, failpoint.ErrInjected) {
		t.Fatalf("a: %v", err)
	}
	for i, want := range []bool{true, true, false, false} {
		if got := failpoint.Inject("b") != nil; got != want {
			t.Fatalf("b hit %d: fired=%v want %v", i, got, want)
		}
	}
	if err := failpoint.Inject("c"); err != nil {
		t.Fatal(err)
	}
	if err := failpoint.Inject("unknown"); err != nil {
		t.Fatal(err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("panic action did not panic")
			}
		}()
		_ = failpoint.Set("p=panic")
		_ = failpoint.Inject("p")
	}()
}

func TestSetRefusesBadSpecs(t *testing.T) {
	t.Cleanup(func() { _ = failpoint.Set("") })
	for _, spec := range []string{"noaction", "=kill", "a=explode", "a=0*kill", "a=x*kill", "a=sleep(forever)"} {
		if err := failpoint.Set(spec); err == nil {
			t.Errorf("Set(%q) accepted", spec)
		}
	}
}

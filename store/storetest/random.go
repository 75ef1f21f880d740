package storetest

import "testing"

func testModelRandom(t *testing.T, e *Env) { t.Skip("model-based test: not yet written") }

package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"tollgate"
	"tollgate/gateway"
	"tollgate/gateway/mockllm"
)

// exampleMeter is the smallest Meter: it accepts every hold and prints
// what it settles. Production uses an adapter over the ledger.
type exampleMeter struct{}

func (exampleMeter) Reserve(ctx context.Context, h gateway.Hold) (string, error) {
	return "hold-1", nil
}

func (exampleMeter) Settle(ctx context.Context, id string, u gateway.Usage) error {
	fmt.Printf("settled %s: %d in, %d out, %d credits via %s\n", id, u.InputTokens, u.OutputTokens, u.Credits, u.Deployment)
	return nil
}

func (exampleMeter) Release(ctx context.Context, id string) error { return nil }

// examplePricer charges one credit per token.
type examplePricer struct{}

func (examplePricer) Cost(model string, t tollgate.Tokens) (tollgate.Credits, error) {
	return tollgate.Credits(t.Input + t.CachedInput + t.CacheWrite + t.CacheWrite1h + t.Output), nil
}

// The HTTP layer authenticates, puts the Caller in the context and mounts
// the gateway's handler; with no providers file, the default mock
// providers point at an in-process mockllm.
func Example() {
	mock := httptest.NewServer(&mockllm.Server{OutputTokens: 4})
	defer mock.Close()
	gw, err := gateway.New(gateway.DefaultMockProviders(mock.URL), gateway.Options{Meter: exampleMeter{}, Pricer: examplePricer{}})
	if err != nil {
		fmt.Println(err)
		return
	}
	authenticated := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		caller := tollgate.Caller{Account: "acct-1", KeyID: "key-1"} // from the API key
		gw.Handler().ServeHTTP(w, r.WithContext(tollgate.WithCaller(r.Context(), caller)))
	})

	body := `{"model":"mock-gpt","max_tokens":16,"messages":[{"role":"user","content":"Say four words"}]}`
	rec := httptest.NewRecorder()
	authenticated.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader(body)))
	var resp struct {
		Choices []struct {
			Message struct{ Content string }
		}
		Usage struct {
			CostCredits int64 `json:"cost_credits"`
		}
	}
	_ = json.Unmarshal(rec.Body.Bytes(), &resp)
	fmt.Println(rec.Code, resp.Choices[0].Message.Content, resp.Usage.CostCredits)
	// Output:
	// settled hold-1: 3 in, 4 out, 7 credits via mock-openai/gpt-4o-mini
	// 200 juniper xray whiskey maple 7
}

package main

import (
	"context"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"

	"tollgate/gateway/mockllm"
)

// TestSDKResponses spends credits with the official OpenAI SDK's
// Responses API (client.Responses.New and NewStreaming) through serve:
// mock-gpt is passed through to the mock's /v1/responses, mock-claude is
// translated to the Anthropic mock and back. Each call's usage is the
// upstream's, usage.cost_credits its advertised price, and the balance
// moves by exactly that; a function call round trip works both ways.
func TestSDKResponses(t *testing.T) {
	s := mustSDKServe(t)
	ctx := context.Background()
	key := s.account(t)
	s.mustPrices(t, key)
	no, bought, _ := s.mustOrder(t, key)
	s.mustPay(t, key, no, bought)

	params := func(model string) responses.ResponseNewParams {
		return responses.ResponseNewParams{
			Model:           model,
			Instructions:    openai.String("be brief"),
			Input:           responses.ResponseNewParamsInputUnion{OfString: openai.String("hello there world")},
			MaxOutputTokens: openai.Int(32),
		}
	}
	usageOf := func(u responses.ResponseUsage) sdkUsage {
		return sdkUsage{In: u.InputTokens, Cached: u.InputTokensDetails.CachedTokens, Out: u.OutputTokens}
	}
	for _, tc := range []struct{ model, upstream string }{{"mock-gpt", "gpt-4o-mini"}, {"mock-claude", "claude-sonnet-4-5"}} {
		t.Run(tc.model, func(t *testing.T) {
			before := s.snap(t, key)
			r, err := s.openai(key).Responses.New(ctx, params(tc.model))
			if err != nil {
				t.Fatal(err)
			}
			u := usageOf(r.Usage)
			// The prompt is "be brief" and "hello there world": 5 tokens.
			if r.Status != "completed" || r.Model != tc.model || mockllm.CountTokens(r.OutputText()) != mockllm.DefaultOutputTokens ||
				u != (sdkUsage{In: 5, Out: mockllm.DefaultOutputTokens}) || r.Usage.TotalTokens != u.In+u.Out {
				t.Fatalf("response %s %q, usage %+v", r.Status, r.OutputText(), r.Usage)
			}
			if tc.model == "mock-gpt" {
				want, err := s.mockOpenAI().Responses.New(ctx, params(tc.upstream))
				if err != nil {
					t.Fatal(err)
				}
				if want.OutputText() != r.OutputText() || usageOf(want.Usage) != u {
					t.Errorf("the mock answers %q %+v", want.OutputText(), want.Usage)
				}
			}
			s.mustBill(t, key, tc.model, before, u, costCredits(t, r.Usage.JSON.ExtraFields), false)

			before = s.snap(t, key)
			stream := s.openai(key).Responses.NewStreaming(ctx, params(tc.model))
			var text string
			var final responses.Response
			deltas := 0
			for stream.Next() {
				switch ev := stream.Current(); ev.Type {
				case "response.output_text.delta":
					text += ev.Delta
					deltas++
				case "response.completed":
					final = ev.Response
				}
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			su := usageOf(final.Usage)
			if text != r.OutputText() || final.OutputText() != text || su != u || int64(deltas) != su.Out || final.Status != "completed" {
				t.Fatalf("streamed %q over %d deltas, final %q usage %+v; want %q and %+v", text, deltas, final.OutputText(), final.Usage, r.OutputText(), u)
			}
			s.mustBill(t, key, tc.model, before, su, costCredits(t, final.Usage.JSON.ExtraFields), false)

			// A function call, then its output sent back with the call.
			before = s.snap(t, key)
			p := params(tc.model)
			p.Input = responses.ResponseNewParamsInputUnion{OfString: openai.String("what is the status of my order?")}
			p.Tools = []responses.ToolUnionParam{{OfFunction: &responses.FunctionToolParam{
				Name: "lookup_order", Strict: openai.Bool(false),
				Parameters: map[string]any{"type": "object", "properties": map[string]any{"order_id": map[string]any{"type": "string"}}},
			}}}
			p.ToolChoice = responses.ResponseNewParamsToolChoiceUnion{OfToolChoiceMode: openai.Opt(responses.ToolChoiceOptionsRequired)}
			call, err := s.openai(key).Responses.New(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			if len(call.Output) != 1 || call.Output[0].Type != "function_call" || call.Output[0].Name != "lookup_order" || call.Output[0].CallID == "" {
				t.Fatalf("output %+v, want one call of lookup_order", call.Output)
			}
			s.mustBill(t, key, tc.model, before, usageOf(call.Usage), costCredits(t, call.Usage.JSON.ExtraFields), false)

			before = s.snap(t, key)
			fc := call.Output[0].AsFunctionCall()
			if fc.Arguments == "" {
				t.Fatalf("call %+v without arguments", fc)
			}
			out := responses.ResponseInputItemParamOfFunctionCallOutput("shipped yesterday")
			out.OfFunctionCallOutput.CallID = openai.String(fc.CallID)
			p.ToolChoice = responses.ResponseNewParamsToolChoiceUnion{}
			p.Input = responses.ResponseNewParamsInputUnion{OfInputItemList: responses.ResponseInputParam{
				responses.ResponseInputItemParamOfMessage("what is the status of my order?", responses.EasyInputMessageRoleUser),
				responses.ResponseInputItemParamOfFunctionCall(fc.Arguments, fc.CallID, fc.Name),
				out,
			}}
			answer, err := s.openai(key).Responses.New(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			au := usageOf(answer.Usage)
			// "be brief" (2), the question (7) and the function's output (2).
			if answer.OutputText() == "" || au.In != 11 {
				t.Fatalf("answer %q usage %+v", answer.OutputText(), answer.Usage)
			}
			s.mustBill(t, key, tc.model, before, au, costCredits(t, answer.Usage.JSON.ExtraFields), false)
		})
	}

	// A stored response cannot be fetched: tollgate keeps none.
	if _, err := s.openai(key).Responses.Get(ctx, "resp_123", responses.ResponseGetParams{}); err == nil {
		t.Error("GET /v1/responses/{id} answered")
	} else if apiErr, ok := err.(*openai.Error); !ok || apiErr.StatusCode != 404 {
		t.Errorf("GET /v1/responses/{id}: %v, want a 404", err)
	}
	s.mustAudit(t)
}

package wxpaysim

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"
)

// simRoutes registers the simulation API (see the package comment).
func (s *Server) simRoutes(m *http.ServeMux) {
	m.HandleFunc("POST /sim/orders/{no}/pay", func(w http.ResponseWriter, r *http.Request) {
		pay := s.Pay
		if r.URL.Query().Get("late") == "1" {
			pay = s.PayLate
		}
		s.simAct(pay)(w, r)
	})
	m.HandleFunc("POST /sim/orders/{no}/fail", s.simAct(s.Fail))
	m.HandleFunc("POST /sim/orders/{no}/userpaying", s.simAct(s.UserPaying))
	m.HandleFunc("GET /sim/orders/{no}", s.simAct(s.Order))
	m.HandleFunc("GET /sim/orders", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Orders())
	})
	m.HandleFunc("POST /sim/orders/{no}/lie", func(w http.ResponseWriter, r *http.Request) {
		if err := s.LieAbout(r.PathValue("no"), r.URL.Query().Get("kind")); err != nil {
			s.simAnswer(w, nil, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"out_trade_no": r.PathValue("no"), "kind": r.URL.Query().Get("kind")})
	})
	m.HandleFunc("POST /sim/orders/{no}/notify-lie", func(w http.ResponseWriter, r *http.Request) {
		d, err := s.NotifyLie(r.PathValue("no"), r.URL.Query().Get("kind"))
		s.simAnswer(w, d, err)
	})
	m.HandleFunc("GET /sim/lies", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.LiesTold())
	})
	m.HandleFunc("POST /sim/refunds/{no}/complete", func(w http.ResponseWriter, r *http.Request) {
		rf, err := s.CompleteRefund(r.PathValue("no"))
		s.simAnswer(w, rf, err)
	})
	m.HandleFunc("GET /sim/notifications", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Notifications())
	})
	m.HandleFunc("GET /sim/faults", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.CurrentFaults())
	})
	m.HandleFunc("POST /sim/faults", func(w http.ResponseWriter, r *http.Request) {
		var f Faults
		d := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
		d.DisallowUnknownFields()
		if err := d.Decode(&f); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "faults: " + err.Error()})
			return
		}
		if err := s.SetFaults(f); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, f)
	})
	m.HandleFunc("POST /sim/clock", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Advance string `json:"advance"`
		}
		err := json.NewDecoder(io.LimitReader(r.Body, 4<<10)).Decode(&req)
		d, perr := time.ParseDuration(req.Advance)
		if err != nil || perr != nil || d < 0 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": `clock: want {"advance":"<Go duration >= 0>"}`})
			return
		}
		s.Advance(d)
		writeJSON(w, http.StatusOK, map[string]string{"now": s.now().Format(time.RFC3339)})
	})
	m.HandleFunc("GET /sim/stats", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Stats())
	})
	m.HandleFunc("GET /sim/config", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Config())
	})
}

// simAct adapts an order method to POST/GET /sim/orders/{no}/...
func (s *Server) simAct(f func(string) (Order, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		o, err := f(r.PathValue("no"))
		s.simAnswer(w, o, err)
	}
}

// simAnswer maps ErrNotFound to 404 and ErrWrongState to 409.
func (s *Server) simAnswer(w http.ResponseWriter, v any, err error) {
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, v)
	case errors.Is(err, ErrNotFound):
		writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
	case errors.Is(err, ErrWrongState):
		writeJSON(w, http.StatusConflict, map[string]any{"error": err.Error(), "current": v})
	case errors.Is(err, errUnknownLie):
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
	default:
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

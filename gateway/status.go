package gateway

// DeploymentStatus is one deployment's routing state, for status pages
// and readiness checks.
type DeploymentStatus struct {
	Model      string `json:"model"`      // public model name
	Deployment string `json:"deployment"` // "provider/upstream-model"
	Provider   string `json:"provider"`
	Kind       string `json:"kind"`
	Priority   int    `json:"priority"`
	Weight     int    `json:"weight"`
	// Breaker is "closed", "open" or "half-open" when the BreakerState
	// can tell (the in-memory Breaker can), else "".
	Breaker string `json:"breaker"`
}

// stateReporter is the optional capability of a BreakerState to report a
// key's state.
type stateReporter interface {
	State(key string) string
}

// Status returns every deployment of every model, in routing order.
func (g *Gateway) Status() []DeploymentStatus {
	sr, _ := g.opts.Breaker.(stateReporter)
	var out []DeploymentStatus
	for _, name := range g.names {
		for _, d := range g.models[name] {
			s := DeploymentStatus{Model: name, Deployment: d.id, Provider: d.provider.Name, Kind: d.provider.Kind,
				Priority: d.cfg.Priority, Weight: d.cfg.Weight}
			if sr != nil {
				s.Breaker = sr.State(d.id)
			}
			out = append(out, s)
		}
	}
	return out
}

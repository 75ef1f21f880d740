package pricing

// PriceLike returns c with every name in names that c does not price yet
// priced like model. It leaves c as it is when c does not price model.
// It gives the public names of a stand-in upstream (the mock LLM's
// mock-gpt, mock-claude, ...) the price of the model they stand in for.
func (c Config) PriceLike(model string, names []string) Config {
	p, ok := c.Models[model]
	if !ok {
		return c
	}
	models := make(map[string]ModelPrice, len(c.Models)+len(names))
	for k, v := range c.Models {
		models[k] = v
	}
	for _, name := range names {
		if _, ok := models[name]; !ok {
			models[name] = p
		}
	}
	c.Models = models
	return c
}

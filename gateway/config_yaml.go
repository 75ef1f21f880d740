package gateway

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ParseConfigFile decodes a providers file named name (only its extension
// is used): .yaml or .yml as YAML, .json as JSON, strictly either way (an
// unknown field, or in YAML a duplicate key, is an error naming it), and
// validates it. YAML uses the JSON field names; a cost may be written as a
// number there (input_cost_per_1m: 2.50).
func ParseConfigFile(name string, b []byte) (*Config, error) {
	switch ext := strings.ToLower(filepath.Ext(name)); ext {
	case ".json":
		return ParseConfig(b)
	case ".yaml", ".yml":
		j, err := yamlToJSON(b)
		if err != nil {
			return nil, fmt.Errorf("decode: %w", err)
		}
		return ParseConfig(j)
	default:
		return nil, fmt.Errorf("the file name must end in .json, .yaml or .yml, not %q", ext)
	}
}

// yamlToJSON turns a YAML document into the JSON the strict JSON decoder
// reads, so both formats are checked by the same rules.
func yamlToJSON(b []byte) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("not valid YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if len(doc.Content) == 0 {
		return nil, fmt.Errorf("the file is empty")
	}
	v, err := yamlValue(doc.Content[0], "", 0)
	if err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

// maxYAMLDepth bounds nesting (and alias expansion) of a providers file.
const maxYAMLDepth = 32

// yamlValue converts n (at path, for errors) to a JSON-ready value.
func yamlValue(n *yaml.Node, path string, depth int) (any, error) {
	if depth > maxYAMLDepth {
		return nil, fmt.Errorf("%s: nested too deep", orRoot(path))
	}
	switch n.Kind {
	case yaml.AliasNode:
		return yamlValue(n.Alias, path, depth+1)
	case yaml.MappingNode:
		out := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("%s: a key must be a text", orRoot(path))
			}
			key := k.Value
			at := key
			if path != "" {
				at = path + "." + key
			}
			if _, dup := out[key]; dup {
				return nil, fmt.Errorf("%s: duplicate key %q", at, key)
			}
			val, err := yamlValue(v, at, depth+1)
			if err != nil {
				return nil, err
			}
			// A cost is a decimal text in the JSON file; YAML
			// writes numbers bare, so a bare number is taken as
			// its text (never through a float).
			if strings.HasSuffix(key, "_cost_per_1m") && v.Kind == yaml.ScalarNode && (v.Tag == "!!int" || v.Tag == "!!float") {
				val = v.Value
			}
			out[key] = val
		}
		return out, nil
	case yaml.SequenceNode:
		out := make([]any, len(n.Content))
		for i, c := range n.Content {
			v, err := yamlValue(c, fmt.Sprintf("%s[%d]", path, i), depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return nil, nil
		case "!!bool":
			return n.Value == "true" || n.Value == "True" || n.Value == "TRUE", nil
		case "!!int", "!!float":
			var num json.Number
			if err := json.Unmarshal([]byte(n.Value), &num); err != nil {
				return nil, fmt.Errorf("%s: %q is not a number JSON can carry", orRoot(path), n.Value)
			}
			return num, nil
		default:
			return n.Value, nil
		}
	}
	return nil, fmt.Errorf("%s: unsupported YAML value", orRoot(path))
}

func orRoot(path string) string {
	if path == "" {
		return "the file"
	}
	return path
}

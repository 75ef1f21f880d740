package catalog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

var amountType = reflect.TypeFor[Amount]()

// decode reads b into f, YAML or JSON by name's extension. Both go through
// one YAML node tree, checked against File's shape before anything is
// decoded: an unknown key, a duplicate key or a value of the wrong type
// is a problem at its path, and every one of them is reported. It returns
// the model names in file order.
func decode(name string, b []byte, f *File, ps *problems) []string {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml":
	case ".json":
		// JSON is YAML, but a JSON file must be JSON: its syntax errors
		// are named as JSON's.
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			ps.add("", "not valid JSON: %v", err)
			return nil
		}
	default:
		ps.add("", "the file name must end in .yaml, .yml or .json, not %q", filepath.Ext(name))
		return nil
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		ps.add("", "not valid YAML: %v", strings.TrimPrefix(err.Error(), "yaml: "))
		return nil
	}
	if len(doc.Content) == 0 {
		ps.add("", "the file is empty")
		return nil
	}
	d := decoder{ps: ps}
	tree := d.conv(doc.Content[0], reflect.TypeFor[File](), "")
	if len(*ps) > 0 {
		return nil
	}
	j, err := json.Marshal(tree)
	if err != nil {
		ps.add("", "decode: %v", err)
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	if err := dec.Decode(f); err != nil {
		ps.add("", "decode: %v", err)
		return nil
	}
	return d.models
}

type decoder struct {
	ps     *problems
	models []string // the keys of "models", in file order
}

// conv turns n into a JSON-ready value of t's shape, naming each problem.
func (d *decoder) conv(n *yaml.Node, t reflect.Type, path string) any {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil // left out: a required value is "missing" in check
	}
	if t == amountType {
		if n.Kind != yaml.ScalarNode || (n.Tag != "!!str" && n.Tag != "!!int" && n.Tag != "!!float") {
			d.ps.add(path, "want a decimal number such as \"1.50\"")
			return nil
		}
		return n.Value
	}
	if t.Kind() == reflect.Pointer {
		return d.conv(n, t.Elem(), path)
	}
	switch t.Kind() {
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.ps.add(path, "want a text, not a %s", kindName(n))
			return nil
		}
		return n.Value
	case reflect.Int, reflect.Int64:
		v, err := strconv.ParseInt(n.Value, 10, 64)
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || err != nil {
			d.ps.add(path, "want a whole number, not %s", shown(n))
			return nil
		}
		return json.Number(strconv.FormatInt(v, 10))
	case reflect.Bool:
		v, err := strconv.ParseBool(n.Value)
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || err != nil {
			d.ps.add(path, "want true or false, not %s", shown(n))
			return nil
		}
		return v
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.ps.add(path, "want a list, not %s", shown(n))
			return nil
		}
		out := make([]any, len(n.Content))
		for i, c := range n.Content {
			out[i] = d.conv(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
		return out
	case reflect.Map, reflect.Struct:
		if n.Kind != yaml.MappingNode {
			d.ps.add(path, "want a mapping of keys to values, not %s", shown(n))
			return nil
		}
		var fields map[string]reflect.Type
		if t.Kind() == reflect.Struct {
			fields = jsonFields(t)
		}
		out := map[string]any{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			key := join(path, k.Value)
			if k.Kind != yaml.ScalarNode {
				d.ps.add(path, "a key must be a text")
				continue
			}
			if _, dup := out[k.Value]; dup {
				d.ps.add(key, "duplicate key %q", k.Value)
				continue
			}
			var ft reflect.Type
			if fields == nil {
				ft = t.Elem()
			} else {
				var ok bool
				if ft, ok = fields[k.Value]; !ok {
					d.ps.add(key, "unknown key %q%s", k.Value, knownKeys(fields))
					continue
				}
			}
			if path == "models" {
				d.models = append(d.models, k.Value)
			}
			out[k.Value] = d.conv(v, ft, key)
		}
		return out
	}
	panic("catalog: no conversion for " + t.String())
}

// jsonFields maps t's JSON keys to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	m := map[string]reflect.Type{}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			m[name] = f.Type
		}
	}
	return m
}

func knownKeys(fields map[string]reflect.Type) string {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	return "; known keys: " + strings.Join(sortedStrings(keys), ", ")
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return "a value"
}

func shown(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return strconv.Quote(n.Value)
	}
	return kindName(n)
}

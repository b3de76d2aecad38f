// Package manifests reads Kubernetes manifests for commands that rewrite them (`sinew inject`, `sinew uninject`):
// from files, directories, URLs or stdin; splits YAML streams into documents and Lists into objects; hands each
// object to a function that edits it in place (package yamledit); and writes the result in the input's format or
// the one asked for. Nothing is written until every input has been read and edited: a bad document fails the
// whole command with its document number and line, and stdout stays empty.
package manifests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sinewmesh/sinew/cli/internal/yamledit"
)

// Source is one input's bytes and how to name it in messages.
type Source struct {
	Name string
	Data []byte
}

// maxInput bounds one input (a URL or stdin): manifests are small, a stuck stream is not.
const maxInput = 64 << 20

// Read loads every argument: "-" is stdin, http(s):// a URL, a directory every .yaml, .yml and .json file under it
// (recursively, in lexical order), anything else a file.
func Read(ctx context.Context, args []string, stdin io.Reader, client *http.Client) ([]Source, error) {
	var out []Source
	for _, arg := range args {
		switch {
		case arg == "-":
			b, err := readAll(stdin)
			if err != nil {
				return nil, fmt.Errorf("reading stdin: %w", err)
			}
			out = append(out, Source{Name: "stdin", Data: b})
		case strings.HasPrefix(arg, "http://") || strings.HasPrefix(arg, "https://"):
			b, err := fetch(ctx, client, arg)
			if err != nil {
				return nil, err
			}
			out = append(out, Source{Name: arg, Data: b})
		default:
			st, err := os.Stat(arg)
			if err != nil {
				return nil, err
			}
			if !st.IsDir() {
				b, err := os.ReadFile(arg)
				if err != nil {
					return nil, err
				}
				out = append(out, Source{Name: arg, Data: b})
				continue
			}
			n := len(out)
			err = filepath.WalkDir(arg, func(p string, e fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				switch strings.ToLower(filepath.Ext(p)) {
				case ".yaml", ".yml", ".json":
					if e.Type().IsRegular() {
						b, err := os.ReadFile(p) //nolint:gosec // G122: the user's own manifests, read with the user's rights
						if err != nil {
							return err
						}
						out = append(out, Source{Name: p, Data: b})
					}
				}
				return nil
			})
			if err != nil {
				return nil, err
			}
			if len(out) == n {
				return nil, fmt.Errorf("%s: no .yaml, .yml or .json files in this directory", arg)
			}
		}
	}
	return out, nil
}

func readAll(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxInput+1))
	if err == nil && len(b) > maxInput {
		err = fmt.Errorf("more than %d MiB", maxInput>>20)
	}
	return b, err
}

func fetch(ctx context.Context, client *http.Client, raw string) ([]byte, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("%s: not a URL", raw)
	}
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", raw, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", raw, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching %s: %s", raw, resp.Status)
	}
	b, err := readAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", raw, err)
	}
	return b, nil
}

// Object is one Kubernetes object in a document: the document itself, or an item of a List. Its nodes change
// with every edit, so it finds them again from its path each time.
type Object struct {
	Doc  *yamledit.Doc
	Path []string // from the document's root to the object
	Kind string
	Name string // metadata.name, else metadata.generateName, else ""
}

// Get returns the node at rel below the object, or nil.
func (o *Object) Get(rel ...string) *yamledit.Node {
	return o.Doc.Root().Path(append(append([]string(nil), o.Path...), rel...)...)
}

// Add and Remove edit the object at rel (see yamledit.Doc).
func (o *Object) Add(rel []string, v any) error {
	return o.Doc.Add(append(append([]string(nil), o.Path...), rel...), v)
}

func (o *Object) Remove(rel []string) error {
	return o.Doc.Remove(append(append([]string(nil), o.Path...), rel...))
}

// Decode decodes the node at rel into v (through JSON).
func (o *Object) Decode(rel []string, v any) error {
	n := o.Get(rel...)
	if n == nil {
		return fmt.Errorf("no %s", strings.Join(rel, "."))
	}
	return o.Doc.Decode(n, v)
}

// String names the object as the summary does: deployment "web".
func (o *Object) String() string {
	name := o.Name
	if name == "" {
		name = "(unnamed)"
	}
	return strings.ToLower(o.Kind) + " " + strconv.Quote(name)
}

// Func edits one object and says what it did: a line for the summary ("injected", "skipped …").
type Func func(o *Object) (string, error)

// Format of the output.
const (
	AsInput = ""     // each document as it came (YAML stays YAML, JSON stays JSON)
	YAML    = "yaml" // JSON documents become YAML
	JSON    = "json" // every document becomes JSON (one value per document, one per line group)
)

// Process runs fn over every object of every source and returns the whole output and the summary lines.
func Process(sources []Source, format string, fn Func) (out []byte, summary []string, err error) {
	if format != AsInput && format != YAML && format != JSON {
		return nil, nil, fmt.Errorf("output format %q: want yaml or json", format)
	}
	var b bytes.Buffer
	for si, src := range sources {
		segs := yamledit.Split(src.Data)
		for _, seg := range segs {
			d, err := yamledit.Parse(seg)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", src.Name, err)
			}
			if root := d.Root(); root != nil {
				if root.Kind != yamledit.Map {
					return nil, nil, fmt.Errorf("%s: %w", src.Name, &yamledit.Error{Doc: d.Index, Line: seg.Line,
						Msg: "not a Kubernetes object (want a mapping with apiVersion and kind)"})
				}
				lines, err := visit(d, nil, fn)
				summary = append(summary, lines...)
				if err != nil {
					return nil, nil, fmt.Errorf("%s: %w", src.Name, err)
				}
				if d.Rewritten() {
					summary = append(summary, fmt.Sprintf("note: %s document %d could not be edited in place and was rewritten: "+
						"same content and comments, but its indentation and quoting may differ", src.Name, d.Index))
				}
			}
			if err := write(&b, d, seg, si > 0 && seg.Index == 1, format); err != nil {
				return nil, nil, fmt.Errorf("%s: %w", src.Name, err)
			}
		}
	}
	return b.Bytes(), summary, nil
}

// visit calls fn on the object at path and, for Lists, on each item.
func visit(d *yamledit.Doc, path []string, fn Func) ([]string, error) {
	n := d.Root().Path(path...)
	kind := n.Get("kind").Str()
	if items := n.Get("items"); strings.HasSuffix(kind, "List") && items != nil && (items.Kind == yamledit.Seq || items.IsNull()) {
		var out []string
		if items.IsNull() {
			return nil, nil
		}
		for i := range items.Items {
			item := append(append([]string(nil), path...), "items", strconv.Itoa(i))
			n := d.Root().Path(item...)
			if n.IsNull() {
				continue // kubectl passes null items through; so do we, untouched
			}
			if n.Kind != yamledit.Map {
				// people count items from 1, as they do documents and lines
				return out, &yamledit.Error{Doc: d.Index, Msg: fmt.Sprintf("%s item %d: not an object", kind, i+1)}
			}
			lines, err := visit(d, item, fn)
			out = append(out, lines...)
			if err != nil {
				return out, err
			}
		}
		return out, nil
	}
	o := &Object{Doc: d, Path: path, Kind: kind}
	o.Name = o.Get("metadata", "name").Str()
	if o.Name == "" {
		o.Name = o.Get("metadata", "generateName").Str()
	}
	if kind == "" {
		return nil, nil // not a Kubernetes object: leave it alone, say nothing
	}
	line, err := fn(o)
	if err != nil {
		return nil, &yamledit.Error{Doc: d.Index, Msg: fmt.Sprintf("%s: %v", o, err)}
	}
	if line == "" {
		return nil, nil
	}
	return []string{o.String() + " " + line}, nil
}

// write appends the document in the asked format; a new source starts with a "---" line when needed.
func write(b *bytes.Buffer, d *yamledit.Doc, seg yamledit.Segment, newSource bool, format string) error {
	switch {
	case format == JSON:
		if d.Root() == nil {
			return nil
		}
		js, err := d.JSON()
		if err != nil {
			return err
		}
		var pretty bytes.Buffer
		if err := json.Indent(&pretty, js, "", "    "); err != nil {
			return err
		}
		b.Write(pretty.Bytes())
		b.WriteByte('\n')
		return nil
	case format == YAML && d.IsJSON():
		y, err := d.YAML()
		if err != nil {
			return err
		}
		sep(b)
		b.Write(y)
		return nil
	}
	text := d.Bytes()
	if newSource && !bytes.HasPrefix(text, []byte("---")) {
		sep(b)
	}
	b.Write(text)
	return nil
}

// sep ends the output so far with a newline and a "---" line, unless nothing was written yet.
func sep(b *bytes.Buffer) {
	if b.Len() == 0 {
		return
	}
	if !bytes.HasSuffix(b.Bytes(), []byte("\n")) {
		b.WriteByte('\n')
	}
	b.WriteString("---\n")
}

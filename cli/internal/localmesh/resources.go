package localmesh

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Resource files are the user's own control-plane resources (`sinew run FILE -f policy.yaml`): kubectl-apply
// documents, such as the policy.sinew.dev kinds, that select the mesh's workloads by their labels. The CLI does not
// parse them: the control plane's local source is the judge (it cannot be imported from here), so each file is
// copied into the resource directory and the control plane's verdict is read back from its /debug/model. A file
// the control plane rejects at start stops the run before any proxy starts; a broken edit later is reported and the
// control plane keeps the file's last good content.

// ResourceFiles expands the -f arguments into files: a file as given, a directory as its .yaml and .yml files in
// name order (not recursive). A missing path, or a directory without such files, is an error naming it.
func ResourceFiles(args []string) ([]string, error) {
	var files []string
	seen := map[string]bool{}
	for _, a := range args {
		st, err := os.Stat(a)
		if err != nil {
			return nil, fmt.Errorf("-f %s: %w", a, unwrapPath(err))
		}
		var found []string
		if !st.IsDir() {
			found = []string{a}
		} else {
			entries, err := os.ReadDir(a)
			if err != nil {
				return nil, fmt.Errorf("-f %s: %w", a, unwrapPath(err))
			}
			for _, e := range entries {
				if !e.IsDir() && isYAML(e.Name()) && !strings.HasPrefix(e.Name(), ".") {
					found = append(found, filepath.Join(a, e.Name()))
				}
			}
			if len(found) == 0 {
				return nil, fmt.Errorf("-f %s: the directory has no .yaml or .yml files", a)
			}
		}
		for _, f := range found {
			abs, err := filepath.Abs(f)
			if err != nil {
				return nil, err
			}
			if !seen[abs] {
				seen[abs] = true
				files = append(files, f)
			}
		}
	}
	return files, nil
}

func isYAML(name string) bool {
	ext := strings.ToLower(filepath.Ext(name))
	return ext == ".yaml" || ext == ".yml"
}

// unwrapPath drops the *fs.PathError layer, whose path the message already names.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// copiedName is where the i-th resource file goes in the resource directory: "user-" names cannot clash with
// mesh.yaml, the index keeps two files of the same name apart and keeps the user's order (the control plane reads
// files in name order; the first definition of a resource wins).
func copiedName(i int, path string) string {
	base := filepath.Base(path)
	if !isYAML(base) {
		base += ".yaml" // the control plane reads only .yaml and .yml
	}
	return fmt.Sprintf("user-%02d-%s", i+1, base)
}

// modelView is the part of the control plane's /debug/model the resource watcher reads.
type modelView struct {
	Version uint64 `json:"version"`
	Errors  []struct {
		Source  string `json:"source"`
		Message string `json:"message"`
	} `json:"errors"`
	PolicyProblems []string `json:"policyProblems"`
	// Files are the control plane's digests of the resource files as it last read them.
	Files map[string]string `json:"files"`
}

// fetchModel reads the control plane's model from its admin address.
func fetchModel(ctx context.Context, admin string) (modelView, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/debug/model", nil)
	if err != nil {
		return modelView{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return modelView{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return modelView{}, fmt.Errorf("control plane /debug/model: %s", resp.Status)
	}
	var v modelView
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return modelView{}, fmt.Errorf("control plane /debug/model: %w", err)
	}
	return v, nil
}

// resourceFile is one -f file and its copy.
type resourceFile struct {
	path   string // as the user gave it
	copied string // base name in the resource directory
	last   []byte // content last copied
	// While copying, the last copy awaits the control plane's verdict: the first model that read it (its digest
	// of the file is digest). A newer model version alone does not say so: the control plane may have changed
	// for another reason before it read the copy.
	copying bool
	digest  string
	readErr string // the read error last reported, so that it is said once
}

// resourceWatcher copies the resource files into the control plane's resource directory whenever their content
// changes and reports what the control plane made of them.
type resourceWatcher struct {
	dir   string // the resource directory
	files []*resourceFile
	out   io.Writer
	model func(context.Context) (modelView, error)
	// problems are the policy problems last reported.
	problems []string
}

func newResourceWatcher(dir string, paths []string, out io.Writer, model func(context.Context) (modelView, error)) *resourceWatcher {
	w := &resourceWatcher{dir: dir, out: out, model: model}
	for i, p := range paths {
		w.files = append(w.files, &resourceFile{path: p, copied: copiedName(i, p)})
	}
	return w
}

// copyAll copies every file once, before the control plane starts; a file that cannot be read is an error.
func (w *resourceWatcher) copyAll() error {
	for _, f := range w.files {
		data, err := os.ReadFile(f.path)
		if err != nil {
			return fmt.Errorf("-f %s: %w", f.path, unwrapPath(err))
		}
		if err := w.copy(f, data); err != nil {
			return err
		}
	}
	return nil
}

// copy writes data as f's copy atomically (a dot-file the control plane ignores, renamed into place), so the
// control plane never reads half a file.
func (w *resourceWatcher) copy(f *resourceFile, data []byte) error {
	tmp := filepath.Join(w.dir, "."+f.copied+".tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil { //nolint:gosec // in our resource directory, under a base name (copiedName)
		return err
	}
	if err := os.Rename(tmp, filepath.Join(w.dir, f.copied)); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	f.last = data
	sum := sha256.Sum256(data)
	f.digest = hex.EncodeToString(sum[:])
	return nil
}

// errorsOf returns the control plane's errors about the resource files, with the copies' names replaced by the
// user's paths.
func (w *resourceWatcher) errorsOf(v modelView, only *resourceFile) []string {
	var msgs []string
	for _, e := range v.Errors {
		base := filepath.Base(e.Source)
		for _, f := range w.files {
			if base != f.copied || (only != nil && f != only) {
				continue
			}
			msgs = append(msgs, w.userNames(e.Message))
		}
	}
	return msgs
}

func (w *resourceWatcher) userNames(msg string) string {
	for _, f := range w.files {
		msg = strings.ReplaceAll(msg, f.copied, f.path)
	}
	return msg
}

// check reads the control plane's verdict on the first copies: an error about any of the files fails the start.
// Policy problems (an authorization naming a missing Server, say) are warnings.
func (w *resourceWatcher) check(ctx context.Context) error {
	v, err := w.model(ctx)
	if err != nil {
		return fmt.Errorf("reading the control plane's verdict on the -f files: %w", err)
	}
	if msgs := w.errorsOf(v, nil); len(msgs) > 0 {
		return fmt.Errorf("the control plane rejects %s", strings.Join(msgs, "\n"))
	}
	w.reportProblems(v)
	return nil
}

func (w *resourceWatcher) reportProblems(v modelView) {
	if slices.Equal(v.PolicyProblems, w.problems) {
		return
	}
	for _, p := range v.PolicyProblems {
		if !slices.Contains(w.problems, p) {
			fmt.Fprintf(w.out, "‼ policy: %s\n", w.userNames(p))
		}
	}
	w.problems = slices.Clone(v.PolicyProblems)
}

// poll copies the files whose content changed and reports the control plane's verdict on earlier copies.
func (w *resourceWatcher) poll(ctx context.Context) {
	v, err := w.model(ctx)
	if err != nil {
		return // the control plane is stopping, or slow: next time
	}
	for _, f := range w.files {
		if f.copying && v.Files[f.copied] == f.digest {
			f.copying = false
			if msgs := w.errorsOf(v, f); len(msgs) > 0 {
				fmt.Fprintf(w.out, "✖ %s; the last good version of %s stays in force\n", strings.Join(msgs, "\n  "), f.path)
			} else {
				fmt.Fprintf(w.out, "✔ %s applied\n", f.path)
			}
		}
	}
	if !w.anyCopying() {
		w.reportProblems(v)
	}
	for _, f := range w.files {
		data, err := os.ReadFile(f.path)
		if err != nil {
			// Editors that save by renaming leave the file missing for a moment; say so once, keep the copy.
			if msg := unwrapPath(err).Error(); msg != f.readErr {
				f.readErr = msg
				fmt.Fprintf(w.out, "‼ cannot read %s (%s); its last copy stays in force\n", f.path, msg)
			}
			continue
		}
		f.readErr = ""
		if bytes.Equal(data, f.last) {
			continue
		}
		if err := w.copy(f, data); err != nil {
			fmt.Fprintf(w.out, "‼ cannot copy %s into the control plane's resources: %v\n", f.path, err)
			continue
		}
		f.copying = true
	}
}

func (w *resourceWatcher) anyCopying() bool {
	return slices.ContainsFunc(w.files, func(f *resourceFile) bool { return f.copying })
}

// run polls every interval until ctx ends.
func (w *resourceWatcher) run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.poll(ctx)
		}
	}
}

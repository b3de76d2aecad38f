// Package check is the framework behind `sinew check`: categories of checks, each check a function of an Env that
// holds the cluster's clients, run in order with retries until a deadline, and reported as a table or JSON. The
// core categories live here, one file each; an extension (viz) adds its own categories and runs them the same way.
// A check only reads the cluster; it never changes it.
package check

import (
	"context"
	"errors"
	"fmt"
	"time"

	apiextclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	"k8s.io/client-go/kubernetes"
)

// HintBase is where the hints live: a check's hint is HintBase + "#" + its anchor.
const HintBase = "https://github.com/sinewmesh/sinew/blob/main/docs/operations/check.md"

// Clients reach one cluster.
type Clients struct {
	Kube   kubernetes.Interface
	APIExt apiextclient.Interface
}

// Env is what checks run against. Fields a category does not need may be zero.
type Env struct {
	// Clients returns the cluster's clients; the kubernetes-api category calls it first and stores the result in
	// Kube and APIExt for the checks after it.
	Clients func() (*Clients, error)
	Kube    kubernetes.Interface
	APIExt  apiextclient.Interface

	Namespace     string           // the control plane's namespace
	ClientVersion string           // the CLI's version
	Now           func() time.Time // the clock (time.Now)
	// ExpectedCRDs are the names of the CRDs this CLI installs.
	ExpectedCRDs []string
	// GatewayAPIVersion is the Gateway API bundle version this CLI installs (charts.GatewayAPIVersion); older
	// installed route CRDs get a warning.
	GatewayAPIVersion string
	// DataPlaneNamespace scopes the data-plane checks; empty means every namespace but the control plane's and
	// the system ones.
	DataPlaneNamespace string
	// CanCreate answers "may I create this" (a SelfSubjectAccessReview); nil uses Kube.
	CanCreate func(ctx context.Context, group, resource, namespace string) (bool, string, error)
}

func (e *Env) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// Severity says what a failed check means.
type Severity int

const (
	// Error fails the run (×).
	Error Severity = iota
	// Fatal fails the run and stops it: nothing after it can work (×).
	Fatal
	// Warning is reported (‼) but the run still succeeds.
	Warning
)

// Check is one test of the cluster.
type Check struct {
	// ID is unique within a run; it is also the anchor of the hint unless Hint is set.
	ID          string
	Description string
	Severity    Severity
	// Retry makes the check run again until it passes or the run's deadline: for things that become true on
	// their own (pods starting).
	Retry bool
	// Hint, when set, is the full hint URL (else HintBase#ID).
	Hint string
	// HintAnchor, when set, replaces ID as the anchor in HintBase.
	HintAnchor string
	Run        func(ctx context.Context, env *Env) error
}

// HintURL is where a failing check's fix is explained.
func (c Check) HintURL() string {
	switch {
	case c.Hint != "":
		return c.Hint
	case c.HintAnchor != "":
		return HintBase + "#" + c.HintAnchor
	default:
		return HintBase + "#" + c.ID
	}
}

// Category is an ordered list of checks shown under one heading.
type Category struct {
	ID     string
	Checks []Check
}

// Status of one result.
type Status string

const (
	OK      Status = "success"
	Warned  Status = "warning"
	Failed  Status = "error"
	Skipped Status = "skipped" // a fatal check before it failed
	// Waiting is never in a report: Observe gets it each time a retried check failed and will be tried again.
	Waiting Status = "waiting"
)

// Result is one check's outcome.
type Result struct {
	Category    string `json:"-"`
	ID          string `json:"id"`
	Description string `json:"description"`
	Hint        string `json:"hint,omitempty"`
	Status      Status `json:"result"`
	Error       string `json:"error,omitempty"`
	// Detail is what a passed check found worth showing (Note), e.g. the versions of what it found.
	Detail string `json:"detail,omitempty"`
}

// Options control a run.
type Options struct {
	// Wait is how long retried checks may keep failing (from the start of the run).
	Wait time.Duration
	// RetryInterval is the pause between two tries of a retried check (default 2s).
	RetryInterval time.Duration
	// Observe is called with each result as soon as it is known (to stream a table), and with a Waiting result
	// (its Error the last failure) each time a retried check will be tried again; may be nil.
	Observe func(Result)
	// Retrying is called before a retried check waits for its next try, with its last error; may be nil.
	Retrying func(c Check, err error)
}

// Report is the outcome of a run.
type Report struct {
	Results []Result
	Success bool
}

// ErrSkip, returned by a check, means it does not apply (not shown, not a failure).
var ErrSkip = errors.New("check does not apply")

// Note, returned by a check, means it passed and found detail worth showing under it (e.g. a version).
func Note(detail string) error { return note{detail} }

type note struct{ detail string }

func (n note) Error() string { return n.detail }

// NoRetry marks a retried check's failure as one that waiting will not mend (nothing to wait for): the check
// fails at once instead of at the deadline.
func NoRetry(err error) error { return noRetry{err} }

type noRetry struct{ error }

func (e noRetry) Unwrap() error { return e.error }

// Run runs the categories in order. A fatal failure marks every later check skipped. The run succeeds when no
// Error or Fatal check failed.
func Run(ctx context.Context, env *Env, cats []Category, opts Options) Report {
	if opts.RetryInterval <= 0 {
		opts.RetryInterval = 2 * time.Second
	}
	deadline := env.now().Add(opts.Wait)
	rep := Report{Success: true}
	stopped := false
	emit := func(r Result) {
		rep.Results = append(rep.Results, r)
		if opts.Observe != nil {
			opts.Observe(r)
		}
	}
	for _, cat := range cats {
		for _, c := range cat.Checks {
			r := Result{Category: cat.ID, ID: c.ID, Description: c.Description}
			if stopped {
				r.Status = Skipped
				emit(r)
				continue
			}
			err := runOne(ctx, env, c, deadline, func(err error) {
				if opts.Retrying != nil {
					opts.Retrying(c, err)
				}
				if opts.Observe != nil {
					w := r
					w.Status, w.Error = Waiting, err.Error()
					opts.Observe(w)
				}
			}, opts.RetryInterval)
			if errors.Is(err, ErrSkip) {
				continue
			}
			var n note
			switch {
			case err == nil:
				r.Status = OK
			case errors.As(err, &n):
				r.Status, r.Detail = OK, n.detail
			case c.Severity == Warning:
				r.Status, r.Error, r.Hint = Warned, err.Error(), c.HintURL()
			default:
				r.Status, r.Error, r.Hint = Failed, err.Error(), c.HintURL()
				rep.Success = false
				if c.Severity == Fatal {
					stopped = true
				}
			}
			emit(r)
		}
	}
	return rep
}

func runOne(ctx context.Context, env *Env, c Check, deadline time.Time, retrying func(error), interval time.Duration) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("the check crashed: %v", p)
		}
	}()
	for {
		err = c.Run(ctx, env)
		var final noRetry
		var n note
		if err == nil || errors.Is(err, ErrSkip) || errors.As(err, &final) || errors.As(err, &n) || !c.Retry || ctx.Err() != nil || !env.now().Add(interval).Before(deadline) {
			return err
		}
		retrying(err)
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

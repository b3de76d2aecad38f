package model_test

import (
	"net/netip"
	"sync"
	"testing"

	"github.com/sinewmesh/sinew/controlplane/internal/model"
)

// pending reports whether ch holds a notification, without waiting.
func pending(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestStoreVersionsAndImmutableSnapshots(t *testing.T) {
	t.Parallel()
	s := model.NewStore()
	first := s.Snapshot()
	if first.Version() != 0 {
		t.Errorf("empty store at version %d", first.Version())
	}
	w := &model.Workload{Namespace: "ns", Name: "web", Address: netip.MustParseAddr("10.0.0.1")}
	s.Update(model.Resources{Workloads: []*model.Workload{w}})
	second := s.Snapshot()
	s.Update(model.Resources{})
	third := s.Snapshot()

	if second.Version() != 1 || third.Version() != 2 {
		t.Errorf("versions %d, %d: want 1, 2", second.Version(), third.Version())
	}
	// A reader holding an older snapshot keeps seeing the model it was taken from.
	if _, ok := first.Workload("ns", "web"); ok {
		t.Error("the empty snapshot gained a workload")
	}
	if got, ok := second.Workload("ns", "web"); !ok || got != w {
		t.Error("the second snapshot lost its workload when the model changed")
	}
	if _, ok := third.Workload("ns", "web"); ok {
		t.Error("a workload survived an update that removed it")
	}
}

func TestStoreNotifiesAndCoalesces(t *testing.T) {
	t.Parallel()
	s := model.NewStore()
	a, unsubscribeA := s.Subscribe()
	b, unsubscribeB := s.Subscribe()
	defer unsubscribeB()
	if pending(a) || pending(b) {
		t.Fatal("notified before any update")
	}

	// Update must not block on subscribers that do not read; a burst leaves one pending notification.
	for range 5 {
		s.Update(model.Resources{})
	}
	if !pending(a) || !pending(b) {
		t.Fatal("a subscriber was not notified")
	}
	if pending(a) || pending(b) {
		t.Error("a burst of updates left more than one notification pending")
	}
	if s.Snapshot().Version() != 5 {
		t.Errorf("version %d after five updates", s.Snapshot().Version())
	}

	unsubscribeA()
	s.Update(model.Resources{})
	if pending(a) {
		t.Error("notified after unsubscribing")
	}
	if !pending(b) {
		t.Error("the remaining subscriber was not notified")
	}
}

// TestStoreConcurrentUse is for the race detector: sources update while servers read and (un)subscribe.
func TestStoreConcurrentUse(t *testing.T) {
	t.Parallel()
	s := model.NewStore()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				s.Update(model.Resources{Workloads: []*model.Workload{{Namespace: "ns", Name: "w"}}})
			}
		})
		wg.Go(func() {
			for range 100 {
				ch, unsubscribe := s.Subscribe()
				_ = s.Snapshot().Debug()
				pending(ch)
				unsubscribe()
			}
		})
	}
	wg.Wait()
	if got := s.Snapshot().Version(); got != 400 {
		t.Errorf("version %d after 400 updates", got)
	}
}

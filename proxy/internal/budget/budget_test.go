package budget

import (
	"math"
	"sync"
	"testing"
	"time"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func withClock(ratio float64, minPerSecond int, ttl time.Duration) (*Budget, *fakeClock) {
	clk := &fakeClock{t: time.Unix(1_000_000, 0)}
	return newBudget(ratio, minPerSecond, ttl, clk.Now), clk
}

// drain withdraws until the budget says no and returns how many it allowed.
func drain(b *Budget) int {
	n := 0
	for b.Withdraw() {
		n++
		if n > 1e6 {
			break
		}
	}
	return n
}

// TestSteadyFailure sends 100 requests a second to a backend that fails them all, each retried up to 3 times as
// long as the budget allows: retries settle at 20 % of requests plus 10 a second.
func TestSteadyFailure(t *testing.T) {
	t.Parallel()
	b, clk := withClock(0.2, 10, 10*time.Second)
	perSecond := make([]int, 60)
	for s := range perSecond {
		for range 100 {
			b.Deposit()
			for range 3 {
				if !b.Withdraw() {
					break
				}
				perSecond[s]++
			}
			clk.Advance(10 * time.Millisecond)
		}
	}
	// At the start the reserve of 10/s × 10 s is there to spend at once.
	if perSecond[0] < 100 {
		t.Errorf("first second: %d retries, want the reserve of 100 and more", perSecond[0])
	}
	total := 0
	for _, n := range perSecond[30:] {
		total += n
	}
	// 30 s at 20 + 10 retries a second; the window is 9 to 10 slots long, so allow a tenth either way.
	t.Logf("last 30 s: %d", total)
	if total < 810 || total > 990 {
		t.Errorf("%d retries in the last 30 s, want about 900 (20 %% of 3000 + 10/s): %v", total, perSecond)
	}
}

func TestIdleWindowLeavesOnlyReserve(t *testing.T) {
	t.Parallel()
	b, clk := withClock(0.2, 10, 10*time.Second)
	for range 1000 {
		b.Deposit()
		clk.Advance(5 * time.Millisecond)
	}
	if n := drain(b); n != 300 {
		t.Fatalf("after 1000 requests in 5 s: %d retries, want 100 + 200", n)
	}
	clk.Advance(10 * time.Second)
	if n := drain(b); n != 100 {
		t.Fatalf("after an idle window: %d retries, want the reserve of 100", n)
	}
	clk.Advance(time.Second)
	if n := drain(b); n != 0 {
		t.Fatalf("reserve spent a second ago: %d more retries", n)
	}
	clk.Advance(9 * time.Second)
	if n := drain(b); n != 100 {
		t.Fatalf("a window after spending the reserve: %d retries, want 100", n)
	}
}

func TestRatioOnly(t *testing.T) {
	t.Parallel()
	b, _ := withClock(0.2, 0, 10*time.Second)
	if b.Withdraw() {
		t.Fatal("retry allowed before any request")
	}
	for range 100 {
		b.Deposit()
	}
	if n := drain(b); n != 20 {
		t.Fatalf("%d retries for 100 requests at 20 %%", n)
	}
}

func TestOddSettings(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		ratio float64
		min   int
		ttl   time.Duration
		want  int // retries after 10 requests
	}{
		{math.NaN(), 0, time.Second, 0},
		{-1, -5, 0, 0},
		{1e9, 0, time.Hour, 10_000},
		{0, 1, time.Nanosecond, 1}, // ttl raised to 1 s
		{0, 1, time.Hour, 60},      // ttl cut to 60 s
	} {
		b, _ := withClock(tc.ratio, tc.min, tc.ttl)
		for range 10 {
			b.Deposit()
		}
		if n := drain(b); n != tc.want {
			t.Errorf("New(%v, %d, %v): %d retries, want %d", tc.ratio, tc.min, tc.ttl, n, tc.want)
		}
	}
	var nilBudget *Budget
	nilBudget.Deposit()
	if nilBudget.Withdraw() || new(Budget).Withdraw() {
		t.Fatal("a nil or zero budget allowed a retry")
	}
	new(Budget).Deposit()
}

// TestConcurrent deposits and withdraws from many goroutines: -race checks the code, and the budget is never
// overdrawn. The window is 60 s, longer than the test, so every count stays in it.
func TestConcurrent(t *testing.T) {
	t.Parallel()
	b := New(0.2, 1, time.Minute)
	const workers, requests = 8, 5000
	var mu sync.Mutex
	allowed := 0
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			n := 0
			for range requests {
				b.Deposit()
				if b.Withdraw() {
					n++
				}
			}
			mu.Lock()
			allowed += n
			mu.Unlock()
		})
	}
	wg.Wait()
	allowed += drain(b)
	if want := 60 + workers*requests/5; allowed != want {
		t.Fatalf("%d retries allowed in all, want exactly %d", allowed, want)
	}
}

func BenchmarkDeposit(b *testing.B) {
	bg := New(0.2, 10, 10*time.Second)
	b.ReportAllocs()
	for b.Loop() {
		bg.Deposit()
	}
}

func BenchmarkDepositParallel(b *testing.B) {
	bg := New(0.2, 10, 10*time.Second)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			bg.Deposit()
		}
	})
}

func BenchmarkWithdraw(b *testing.B) {
	bg := New(0.2, 10, 10*time.Second)
	b.ReportAllocs()
	for b.Loop() {
		bg.Deposit()
		bg.Withdraw()
	}
}

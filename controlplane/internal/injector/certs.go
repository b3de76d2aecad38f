package injector

import (
	"crypto/tls"
	"fmt"
	"os"
	"sync"
	"time"
)

// certRecheck is how often the certificate files are looked at again (a mounted Secret changes in place).
const certRecheck = 10 * time.Second

// certLoader serves the certificate in certFile/keyFile and picks up changes to them.
type certLoader struct {
	certFile, keyFile string

	mu        sync.Mutex
	cert      *tls.Certificate
	certMod   time.Time
	keyMod    time.Time
	checkedAt time.Time
}

func (l *certLoader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) { return l.get() }

// get returns the current pair, re-reading the files when their modification times changed. A pair that fails to
// load after a change keeps the previous one in service (the Secret's two keys may be updated a moment apart).
func (l *certLoader) get() (*tls.Certificate, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if l.cert != nil && now.Sub(l.checkedAt) < certRecheck {
		return l.cert, nil
	}
	l.checkedAt = now
	cs, err1 := os.Stat(l.certFile)
	ks, err2 := os.Stat(l.keyFile)
	if err1 != nil || err2 != nil {
		if l.cert != nil {
			return l.cert, nil
		}
		if err1 != nil {
			return nil, err1
		}
		return nil, err2
	}
	if l.cert != nil && cs.ModTime().Equal(l.certMod) && ks.ModTime().Equal(l.keyMod) {
		return l.cert, nil
	}
	pair, err := tls.LoadX509KeyPair(l.certFile, l.keyFile)
	if err != nil {
		if l.cert != nil {
			return l.cert, nil
		}
		return nil, fmt.Errorf("%s, %s: %w", l.certFile, l.keyFile, err)
	}
	l.cert, l.certMod, l.keyMod = &pair, cs.ModTime(), ks.ModTime()
	return l.cert, nil
}

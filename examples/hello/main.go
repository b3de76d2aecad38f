// Command hello is the smallest meshed application: an HTTP server that tells the caller who it is and who
// called it (the sinew-client-id header its proxy adds). `make demo` runs it until emojivoto arrives.
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18080", "listen address")
	name := flag.String("name", "hello", "name to answer with")
	flag.Parse()
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		caller := r.Header.Get("sinew-client-id")
		if caller == "" {
			caller = "an unmeshed client"
		}
		fmt.Fprintf(w, "hello from %s; you are %s; %s %s over %s\n", *name, caller, r.Method, r.URL.Path, r.Proto)
	})
	srv := &http.Server{Addr: *addr, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.ListenAndServe())
}

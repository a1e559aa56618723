// Command webhook-receiver is a local stand-in for a chat or CI webhook,
// for trying a plan's notify section (see examples/bake-notify.yaml): it
// answers every POST with 204 and prints its body on one line, so that each
// notification rollout sends shows up once, as it arrives.
//
//	go run ./examples/webhook-receiver -addr 127.0.0.1:8099
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"strconv"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8099", "address to listen on")
	flag.Parse()
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		// Quoting keeps each message on one line and shows any control
		// character instead of letting it act on the terminal.
		fmt.Printf("%s %s %s\n", time.Now().Format(time.TimeOnly), r.URL.Path, strconv.Quote(string(body)))
		w.WriteHeader(http.StatusNoContent)
	})
	log.Printf("webhook-receiver: listening on http://%s/", *addr)
	log.Fatal(http.ListenAndServe(*addr, nil))
}

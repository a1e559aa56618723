# Targets a newcomer and CI use. `make test` is the README's test command.
GO ?= go
BIN := bin/rollout

.PHONY: build test demo bench lint schema fuzz clean

build:
	$(GO) build -o $(BIN) .

test:
	$(GO) test -race ./...

# Runs the quickstart against the built-in simulator with the live view.
demo: build
	./$(BIN) run examples/quickstart.yaml --sim --fresh --yes

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# Checks the schema and every example against it, and prints it.
schema: build
	$(GO) test ./schema/...
	./$(BIN) schema > /dev/null

# Short fuzz runs of the plan loader and the API response decoder.
fuzz:
	$(GO) test ./plan -run '^$$' -fuzz FuzzParse -fuzztime 30s
	$(GO) test ./clanforge -run '^$$' -fuzz FuzzDecode -fuzztime 30s

clean:
	rm -rf bin

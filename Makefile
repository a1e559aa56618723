# Targets a newcomer and CI use. `make test` is the README's test command.
GO ?= go
BIN := bin/rollout

.PHONY: build test demo bench lint schema fuzz chaos clean

# -buildvcs=auto stamps the git revision that rollout --version shows (some
# environments set GOFLAGS=-buildvcs=false).
build:
	$(GO) build -buildvcs=auto -o $(BIN) .

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

# Short fuzz runs of the plan loader, the API response decoder, the
# scenario parser and the credential masker.
fuzz:
	$(GO) test ./plan -run '^$$' -fuzz '^FuzzParse$$' -fuzztime 30s
	$(GO) test ./clanforge -run '^$$' -fuzz '^FuzzDecodeResponses$$' -fuzztime 30s
	$(GO) test ./clanforge/sim -run '^$$' -fuzz '^FuzzParseScenario$$' -fuzztime 30s
	$(GO) test ./redact -run '^$$' -fuzz '^FuzzSecretNeverLeaks$$' -fuzztime 30s

# The randomized kill-and-resume proof of issue 9 at length: trials of run,
# kill (SIGKILL, SIGTERM, SIGINT) at a random moment, remote time passing,
# resume, against the simulator with random faults; `make test` runs 8.
# CHAOS_TRIALS=n sets the number, CHAOS_SEED=s replays from a seed.
CHAOS_TRIALS ?= 60
chaos:
	CHAOS_TRIALS=$(CHAOS_TRIALS) $(GO) test ./e2e -run '^TestChaos$$' -count=1 -timeout 60m -v

clean:
	rm -rf bin

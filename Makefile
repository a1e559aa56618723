# Targets a newcomer and CI use. `make test` is the README's test command.
GO ?= go
BIN := bin/rollout

.PHONY: build test demo demo-cutover bench lint schema fuzz chaos clean

# -buildvcs=auto stamps the git revision that rollout --version shows (some
# environments set GOFLAGS=-buildvcs=false).
build:
	$(GO) build -buildvcs=auto -o $(BIN) .

test:
	$(GO) test -race ./...

# Runs the quickstart against the built-in simulator with the live view.
demo: build
	./$(BIN) run examples/quickstart.yaml --sim --fresh --yes

# Runs the A/B cut-over against the built-in simulator with the live view:
# waves, a bake, the readiness counters per region and the profile switch
# of both fleets; --auto-approve gives its two approvals.
demo-cutover: build
	./$(BIN) run examples/ab-cutover.yaml --sim --fresh --yes --auto-approve --speed 4

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# Checks the schema and every example against it, and prints it.
schema: build
	$(GO) test ./schema/...
	./$(BIN) schema > /dev/null

# Short fuzz runs of every fuzz target: the plan loader and its fast YAML
# path, the API response decoder and its fast paths, the scenario parser,
# the credential masker and the output boundary. -fuzzminimizetime keeps
# the minimizer from spending minutes on large corpus inputs.
FUZZTIME ?= 30s
fuzz:
	$(GO) test ./plan -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s
	$(GO) test ./plan -run '^$$' -fuzz '^FuzzFastParse$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s
	$(GO) test ./clanforge -run '^$$' -fuzz '^FuzzDecodeResponses$$' -fuzztime $(FUZZTIME)
	$(GO) test ./clanforge -run '^$$' -fuzz '^FuzzEnvelopeFields$$' -fuzztime $(FUZZTIME)
	$(GO) test ./clanforge -run '^$$' -fuzz '^FuzzScalarFastPaths$$' -fuzztime $(FUZZTIME)
	$(GO) test ./clanforge/sim -run '^$$' -fuzz '^FuzzParseScenario$$' -fuzztime $(FUZZTIME)
	$(GO) test ./redact -run '^$$' -fuzz '^FuzzSecretNeverLeaks$$' -fuzztime $(FUZZTIME)
	$(GO) test ./redact -run '^$$' -fuzz '^FuzzTerminalHidesSecrets$$' -fuzztime $(FUZZTIME)

# The randomized kill-and-resume proof of issue 9 at length: trials of run,
# kill (SIGKILL, SIGTERM, SIGINT) at a random moment, remote time passing,
# resume, against the simulator with random faults; `make test` runs 8.
# CHAOS_TRIALS=n sets the number, CHAOS_SEED=s replays from a seed.
CHAOS_TRIALS ?= 60
chaos:
	CHAOS_TRIALS=$(CHAOS_TRIALS) $(GO) test ./e2e -run '^TestChaos$$' -count=1 -timeout 60m -v

clean:
	rm -rf bin

# Chrysalis. Two entry points for people: `make demo` and `make test`.
GO      ?= go
BIN     := bin
RELEASE ?= release
PORT    ?= 8443

.PHONY: demo test release chrysalis agent lint clean

## demo: install what is missing, build the release, boot it in dev mode, verify one request.
demo:
	ci/deps.sh
	$(MAKE) release
	ci/demo.sh $(BIN)/chrysalis $(RELEASE) $(PORT)

## test: every check CI runs (lint, unit, end-to-end boot, A/B reproducibility).
test:
	ci/test.sh

## release: build the reproducible release directory.
release: chrysalis
	$(BIN)/chrysalis build --out $(RELEASE)

chrysalis:
	$(GO) build -o $(BIN)/chrysalis ./host/cmd/chrysalis

agent:
	CGO_ENABLED=0 $(GO) build -o $(BIN)/agent ./agent/cmd/agent

lint:
	ci/lint.sh

clean:
	rm -rf $(BIN) $(RELEASE)

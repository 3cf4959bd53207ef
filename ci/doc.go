// Package ci holds what CI runs beyond the unit tests: the end-to-end boot
// test (ci/e2e), the A/B reproducibility check (repro.sh), lint and the
// demo script. `make test` (ci/test.sh) runs all of it.
package ci

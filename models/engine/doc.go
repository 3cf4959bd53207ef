// Package engine builds the inference engine that serves model disks:
// ollama, built from the Go module proxy with cgo (its vendored
// llama.cpp/ggml CPU backend) and linked statically, byte-reproducibly,
// into a content-addressed cache.
//
// # What is pinned
//
// engine.lock (embedded) pins the module, version and go.sum hash, the
// Go toolchain, the build flags (-trimpath, tags osusergo,netgo,
// -ldflags "-s -w -X .../version.Version=0.17.4 -linkmode external
// -extldflags -static", GOAMD64=v1, the CGO_* flags), the Debian
// toolchain packages whose code ends up in the static binary (gcc/g++,
// libstdc++, libc6-dev, binutils), the two apt header packages the module
// zip lacks (the proxy's zips drop every vendor/ directory:
// nlohmann-json3-dev, libstb-dev) and the resulting binary's SHA-256 and
// size. The fourth missing header, miniaudio.h, is our own stub
// (stub/miniaudio/miniaudio.h, embedded): llama.cpp's mtmd helper only
// uses it to decode audio input, which we do not serve; every decoder call
// fails.
//
// # Reproducibility
//
// Build runs `go install -trimpath ... github.com/ollama/ollama@v0.17.4`
// in a fresh temporary directory with a complete, fixed environment:
// only PATH and the module and build caches come from the caller; HOME,
// TMPDIR, GOBIN, TZ, LC_ALL, GOTOOLCHAIN=local, GOFLAGS=-mod=mod and the
// cgo variables are set. With -trimpath the go command maps the module
// directory with -ffile-prefix-map for every cgo compile (so __FILE__ in
// GGML_ASSERT reads /_/github.com/ollama/ollama@v0.17.4/...) and leaves
// the CGO_* variables out of the build info, and "-s -w" (passed on to
// the external linker as -s) drops symbol tables and DWARF with their
// compilation directories. One more thing was needed: the first A/B pair
// (different GOMODCACHE, GOCACHE, HOME, TMPDIR and stub directory)
// differed at equal size, through the Go build ID note: a hash of the
// build's inputs that includes CGO_CPPFLAGS and so the stub's path.
// "-buildid=" in -ldflags leaves it out (the GNU build ID note is a hash
// of the output and stays); with it, two builds with every path, cache,
// HOME and TZ different (one with cold module and build caches) gave the
// same bytes, the SHA-256 in engine.lock. What remains is the toolchain itself: a different
// Go, gcc, libstdc++, glibc or binutils yields a different binary, and
// Build then fails naming both hashes and the expected versions.
//
// # Cache
//
// The binary is kept at $CHRYSALIS_ENGINE_CACHE/sha256-<hex> (default
// ~/.cache/chrysalis/engine/), installed by atomic rename and verified by
// hash whenever it is taken from the cache; a build whose hash differs
// from the lock is still cached under its own hash, for inspection. The
// miniaudio stub is written next to it, in stub-<hash of its content>/, so
// its include path is stable and the go build cache stays warm.
package engine

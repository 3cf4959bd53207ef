// Package catalog is the list of pinned models that chrysalis serves:
// models/catalog/catalog.json, embedded in the binary and decoded
// strictly (unknown fields, trailing data and a wrong version are
// errors).
//
// Each entry pins where the model came from (source and revision), the
// SHA-256 of the archive or download it was packed from, and the model
// disk built from it by models/pack: the image SHA-256 and the dm-verity
// root hash, salt and UUID (the salt and UUID are derived from the image
// SHA-256, see models/pack, and Validate checks that). It also names the
// engine that serves it ("llama.cpp", "ollama" or "vllm"), the engine's
// extra arguments and the context size. Test marks generated test models.
//
// The file holds no production model yet: hashes are only written here
// for images actually built, never made up. The test model is added once
// its generator exists (issue 6 item 6); the catalog test packs a
// generated directory and checks that an entry built from Pack's result
// validates.
package catalog

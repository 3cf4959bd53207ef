// Package ollama writes ollama model stores: the content-addressed
// directory that `ollama serve` reads from OLLAMA_MODELS, without running
// ollama (`ollama create` needs a live server and records absolute
// paths).
//
// # Layout
//
//	blobs/sha256-<hex>     the GGUF, unchanged (application/vnd.ollama.image.model)
//	blobs/sha256-<hex>     the chat template text (…image.template)
//	blobs/sha256-<hex>     the parameters as JSON, keys sorted (…image.params)
//	blobs/sha256-<hex>     the config JSON (model_format, model_family,
//	                       model_type, file_type, architecture, os, rootfs)
//	manifests/registry.ollama.ai/library/<name>/<tag>
//	                       the manifest: schemaVersion 2, the config and the
//	                       layers by digest and size
//
// This is what `ollama create` writes for a Modelfile with FROM, TEMPLATE
// and PARAMETER lines, minus each layer's "from" field (an absolute path
// of the creating host, which the server does not read). The config's
// architecture is "amd64" (the engine's, not the host's). Every file
// depends only on the model's content, so two runs into different
// directories are byte-identical and the packed model disk, and with it
// its dm-verity root hash, follows from the inputs.
//
// The server reads such a store read-only when started with
// OLLAMA_NOPRUNE=1 (its startup prune would delete blobs) and a writable
// HOME (it creates ~/.ollama/id_ed25519).
//
// # Model directories
//
// WriteTestModelDir writes the test model's directory: engine/ollama (the
// engine binary from models/engine) and store/ holding chrysalis-tiny, the
// GGUF of models/gguf's Tiny() with a one-line-per-message template,
// num_ctx 512, num_thread 1 and temperature 0. models/pack turns it into
// the model disk the catalog pins.
package ollama

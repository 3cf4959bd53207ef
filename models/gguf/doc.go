// Package gguf generates the tiny deterministic test model and parses
// GGUF headers.
//
// # Generator
//
// Generate writes a GGUF v3 file (little endian: magic "GGUF", version,
// tensor and metadata counts, the metadata pairs, the tensor infos, zero
// padding to general.alignment = 32, then each tensor's F32 data padded to
// 32) of a llama-architecture model with random weights (splitmix64 from
// Params.Seed) and a byte-level vocabulary: <unk>, <s>, </s> and the 256
// byte tokens <0x00>..<0xFF> (SentencePiece "llama" tokenizer, token type
// BYTE, all scores 0). It writes the 23 metadata keys both of ollama's
// engines need (the llama.cpp runner and the Go engine: the latter aborts
// without head_count_kv and panics without scores). The output depends
// only on Params: Tiny() (2 layers, dim 64, 4 heads, ff 128, context
// 4096, 115,392 weights) is 469,472 bytes and its SHA-256 is pinned in
// the tests; GeneratorVersion changes whenever those bytes would.
//
// # The cycle
//
// A plain random model decodes greedily into a run of one token, which
// ollama cuts off after 30 repeats (its stream then ends without
// finish_reason). With Params.Cycle the weights are arranged so that
// greedy decoding walks a fixed cycle through the 95 printable bytes
// instead: residual channel 0 holds a constant 8 in every embedding and no
// layer writes it (row 0 of attn_output and ffn_down is zero, and the
// other writer weights are scaled by 0.02), so it stays positive after the
// final RMSNorm; output.weight has +2 in channel 0 for the printable
// bytes and -2 for every other token, and the output row of next(b) is
// the embedding of b. The logit of next(b) therefore exceeds every other
// one by about the squared norm of b's embedding. Cycle and CycleText
// give the successor map and the expected text, so a test can check a
// served completion byte by byte.
//
// # Parser
//
// Parse reads a GGUF v2/v3 header from any reader, model files from
// outside included: every length and count is bounded (MaxStringLen,
// MaxArrayLen, MaxKVs, MaxTensors, MaxDims), slices grow with the bytes
// actually read, keys and tensor names must be unique, tensor offsets
// aligned and rows whole blocks of their type. It is fuzzed (FuzzParse).
package gguf

// Package registry owns the on-chain allowlist of image and model hashes
// (ARCHITECTURE decision 11): a small Tolk contract holding the allowed
// image hashes (decision 3: SHA-256 over the quote fields, 32 bytes) and
// model hashes (32-byte keys, e.g. the SHA-256 of a model's canonical
// catalog entry or its dm-verity root) under one governance address, in
// the role COCOON's root contract plays (research/ton-host.md).
//
// # Contract
//
// The source is contract/registry.tolk, compiled by the Tolk compiler
// published on npm as @ton/tolk-js, pinned to an exact version in
// contract/package.json and package-lock.json. contract/compile.mjs writes
// contract/registry.code.boc and contract/registry.code.hash; both are
// checked in, this package embeds the BOC (Code, CodeHash), and
// ci/tolk-check.sh recompiles and fails when the checked-in output no
// longer matches the source. README.md documents every op code, message
// layout, exit code and get-method; proxies implement against it.
//
// # Go side
//
// StateInit and Address give the deployment of a registry for a
// governance address. AddImage, RemoveImage, AddModel, RemoveModel and
// ChangeGovernance build the internal message bodies the governance wallet
// sends. ParseData decodes the account data (strict, bounded: the exact
// storage layout, at most MaxEntries per dictionary, no exotic cells) into
// a State a verifier can query offline (ImageAllowed, ModelAllowed), and
// ParseEntries decodes the dictionary the get_images and get_models
// get-methods return.
//
// The tests run the real compiled code in tonutils-go's TVM emulator
// (package tvm) with full transactions against the mainnet configuration,
// through the shared harness measure/tonemu: deploy, add, remove, get-method
// answers, refusal of other senders and of malformed bodies, and a
// governance change.
package registry

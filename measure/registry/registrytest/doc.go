// Package registrytest is a small emulated TON basechain for tests outside
// measure/registry: accounts run in tonutils-go's TVM (package tvm) with
// full ordinary transactions (storage, credit, compute, action, bounce)
// against the mainnet configuration, a thin layer over measure/tonemu (the
// harness measure/registry's own tests use too). A test deploys the real
// registry contract (DeployRegistry), funds a wallet address (Fund), sends
// the exact external message a tonutils-go wallet builds (SendExternal),
// delivers the internal messages that transaction created (Deliver) and
// reads the registry's account data back (RegistryState).
package registrytest

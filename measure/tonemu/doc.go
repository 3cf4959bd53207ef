// Package tonemu is test support: an in-memory TON mini-chain that runs
// real contract code in tonutils-go's TVM emulator (package tvm). Every
// message is a full ordinary transaction (storage, credit, compute, action
// and bounce phases) priced by the TON mainnet configuration embedded from
// testdata/blockchain_config_mainnet.boc, so gas, forwarding and storage
// fees are mainnet fees. A Chain keeps the accounts between messages,
// delivers the internal messages a transaction creates (bounces included)
// breadth first (Deliver), and runs get-methods on an account's current
// code and data (RunGetMethod). Its state can be exported as a
// JSON-serialisable Snapshot and rebuilt with Restore, so a caller can
// persist the chain (payouttest keeps one in a file that survives SIGKILL).
//
// It is the one emulator harness of the repository: registrytest,
// payouttest and the emulator tests of measure/registry and
// measure/payment/channel are thin layers over it. It imports no
// Chrysalis package, so any package's internal tests can use it.
package tonemu

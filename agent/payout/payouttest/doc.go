// Package payouttest is an emulated TON chain for the payout tests, a
// persistent layer over measure/tonemu: every account runs its real code
// in tonutils-go's TVM emulator with full transactions (storage, credit,
// compute, action, bounce) under the mainnet configuration — the gas
// wallet (wallet v5r1), the payment channel (the pinned contract) and the
// owner (an account that is never deployed and receives non-bounceable
// payouts). Its state (tonemu's Snapshot plus the queue and the
// transaction log) lives in one file in a directory, rewritten atomically
// after every change, so a process killed at any point and its successor
// see the same chain. Externals wait in a queue until Tick applies them
// with their follow-up internal messages and advances chain time. It also
// plays the proxy: signing cumulative payment states and co-signing
// commits through the published message formats.
package payouttest

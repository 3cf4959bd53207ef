// Package payout is the worker's payout state machine: the durable Ledger
// (built on the journal package: append-only, fsynced, hash-chained) that
// holds the channel configuration, the highest proxy-signed payment state
// accepted, B's last commit seqno, the cumulative amount confirmed paid to
// the owner on chain and every settlement intent with its exact signed
// external message; and the Settler, the single writer that turns what is
// due into a cooperative commit on the payment channel, sent from the
// worker's V5R1 gas wallet, and reconciles it with the chain after any
// crash. Amounts are nanoTON everywhere, and every amount derives from
// cumulative totals, never from counters kept in memory.
//
// The ledger also numbers the worker's usage receipts: ReceiptSigner (the
// agent API's Signer) journals every receipt, fsynced, before returning
// it, so receipt sequence numbers survive restarts without gaps or reuse,
// and the ledger keeps how many were signed and what they claim. With a
// record per request the journal compacts itself into one snapshot every
// DefaultCompactEvery records (SetCompactEvery), crash-safely. The
// snapshot keeps the totals, the open intent and the finished intents that
// may still be planned again; every other finished intent (its target at
// or below the confirmed total, so no record can change it) is folded into
// counts by status, so the snapshot does not grow with the number of
// settlements. A failed compaction is reported in the Summary
// (ledger_error). OpenLedger takes an exclusive flock on path+".lock": one
// agent per ledger.
//
// Summarize and Ledger.Summary produce the owner's view of the money in
// measure/payment's Summary format, which the agent serves on
// /v1/payment/status and sends to the host on the status channel.
//
// The chain is behind the Chain interface (liteclient.go implements it on
// tonutils-go's API client); the proxy's co-signature is behind CoSigner;
// keys come from a KeyProvider. payouttest runs the same contracts in
// tonutils-go's TVM emulator for the tests.
package payout

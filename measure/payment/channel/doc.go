// Package channel owns Chrysalis's Go bindings to the TON payment-channel
// contract that proxies (party A, the payer) and workers (party B, paid to
// the GPU owner's wallet) settle through. The contract is the one
// github.com/xssnick/ton-payment-network deploys; its compiled code is
// embedded and hash-pinned in the contract subpackage, and the tests run
// that exact code in tonutils-go's TVM emulator (tvm package, pure Go).
//
// It owns: the channel configuration (keys, channel id, closing and
// payment configuration with the payout addresses), the initial storage
// data, StateInit and address; the contract's storage layout (build and
// parse); the semi-channel state a party signs — seqno, cumulative amount
// sent, conditionals hash — which is the proxy-signed cumulative payment
// state; and the bodies of the internal messages the contract accepts for
// set-up and settlement (init, top-up, cooperative commit, cooperative
// close, start and finish of an uncooperative close), with ed25519 signing
// and verification.
//
// Every layout follows the contract's TL-B (contracts/schema.tlb in
// github.com/xssnick/payment-channel-contract). Only Toncoin channels are
// supported; jetton and extra-currency payment configurations are refused.
// Parsers of outside input (BOCs from the counterparty or from the chain)
// bound the BOC size and cell count and refuse trailing data.
//
// Nothing here talks to the network: callers send the bodies through a
// wallet.
package channel

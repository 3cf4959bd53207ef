// Package contract owns the compiled code of the TON payment-channel
// contract that Chrysalis proxies and workers settle through: the exact
// code BOC that github.com/xssnick/ton-payment-network v1.2.3 deploys
// (PaymentChannelCodeBoCs[0], MIT licence; see PROVENANCE.md), embedded
// as payment_channel.boc, and its pinned cell hash. A channel whose
// on-chain code hash differs from CodeHash is not one we understand.
package contract

// Package payment owns what worker and proxy exchange about money: the
// owner's TON payout address (validated and normalised), the payout RTMR3
// event payload, and the payment protocol's messages — the worker's
// signed per-request Receipt, the proxy's PaymentState (its signed
// cumulative channel state) with CheckState, and the CommitRequest /
// CommitResponse pair by which the proxy co-signs a settlement — with
// strict, size-bounded decoders. The README's "Payment protocol" section
// publishes the formats. The channel contract bindings live in
// measure/payment/channel.
package payment

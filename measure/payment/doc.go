// Package payment owns what worker and proxy exchange about money: the
// owner's TON payout address (validated and normalised), the payout RTMR3
// event payload, and (in later files) usage receipts and payment states.
// The channel contract bindings live in measure/payment/channel.
package payment

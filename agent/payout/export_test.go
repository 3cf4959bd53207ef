package payout

// Folded exposes compaction's folding to the external tests.
var Folded = (*State).folded

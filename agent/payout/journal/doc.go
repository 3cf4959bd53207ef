// Package journal is the payout ledger's durable storage: an append-only
// file of JSON lines, each fsynced before Append returns, each carrying the
// SHA-256 chain of every record before it. Open replays the file; a crash
// can leave only the last line incomplete, and that line (never an earlier
// one) is cut off on the next Open. Any other damage — a broken chain, a
// bad line in the middle, a sequence gap — is an error: the ledger never
// guesses what money it held. Compact rewrites the file as one snapshot
// record through a temporary file and a rename.
package journal

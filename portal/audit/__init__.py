"""The tamper-evident audit ledger: append-only, hash-chained. Knows no app."""

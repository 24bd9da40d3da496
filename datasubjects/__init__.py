"""GDPR data subject requests, consent ledger, privacy and profiling notices."""

"""Data: the user's files. Readers for JSONL/JSON/CSV records and their splits, `tunelab
data check` (bad records, duplicates, leakage), `tunelab data from-logs` (chat logs to a
training set), `tunelab init` (a commented config from a data file), the scoring rule
chosen from the training targets, and where shipped or mirrored datasets are found."""

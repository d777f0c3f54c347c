"""Run: a grid's cells (method x train size x seed x model), their keys, computing one
cell, recording cells in the store, the executors (local, Ray), rerunning a stored cell,
and optional MLflow tracking."""

"""Core: what every other package stands on, importing nothing above it: the run
configuration schema (YAML onto typed dataclasses), the SQLite results store, content-
hashed disk caches, provenance (git commit, package versions) and the rich console."""

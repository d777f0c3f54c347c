"""Report: Markdown and HTML pages from the store (tables, plots, sections for
distillation and shipped models, predictions side by side), their templates, and the
`--json` results."""

"""CLI: the typer app and its command groups; thin: parse, call one function, print."""

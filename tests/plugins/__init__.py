"""Methods and a task defined outside the package, each registered by one line in
tests/test_add_method.py: what CONTRIBUTING.md's walk-throughs say a new one takes."""

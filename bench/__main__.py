"""`python -m bench`: the entry point `make bench` uses (see bench/cli.py)."""

from __future__ import annotations

from bench.cli import main

raise SystemExit(main())

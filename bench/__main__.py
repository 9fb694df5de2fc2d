"""`python -m bench`: the entry point `make bench` uses."""

from __future__ import annotations

from bench.runner import main

raise SystemExit(main())

"""`python -m pipeline` runs the same CLI as the `lookthrough` console script."""

from pipeline.cli import main

raise SystemExit(main())

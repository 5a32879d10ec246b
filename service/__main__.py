"""`python -m service` is the `garmin-sync` command."""

from service.cli import main

raise SystemExit(main())

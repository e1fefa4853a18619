from runners.models.cli import main

raise SystemExit(main())

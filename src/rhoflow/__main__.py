from rhoflow.cli import main

raise SystemExit(main())

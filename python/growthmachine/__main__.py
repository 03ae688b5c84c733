from growthmachine.cli import main

raise SystemExit(main())

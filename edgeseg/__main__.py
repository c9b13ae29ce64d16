import sys

from edgeseg.cli.main import main

sys.exit(main())

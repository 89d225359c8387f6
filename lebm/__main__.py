import sys

from lebm.cli import main

sys.exit(main())

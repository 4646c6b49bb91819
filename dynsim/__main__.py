import sys

from dynsim.cli import main

sys.exit(main())

import sys

from aioixy.cli import main

sys.exit(main())

import sys

from untwine.cli import main

sys.exit(main())

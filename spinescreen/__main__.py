import sys

from spinescreen.cli import main

sys.exit(main())

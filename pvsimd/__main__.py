import sys

from pvsimd.cli import main

sys.exit(main())

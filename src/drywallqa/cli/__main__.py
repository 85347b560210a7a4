import sys

from drywallqa.cli import main

sys.exit(main())

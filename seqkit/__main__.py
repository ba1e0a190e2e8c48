import sys

from seqkit.cli.main import main

sys.exit(main())

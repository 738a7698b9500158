import sys

from controller.kamailio.cli import main

sys.exit(main())

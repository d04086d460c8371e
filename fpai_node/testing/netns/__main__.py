import sys

from fpai_node.testing.netns.cli import main

sys.exit(main())

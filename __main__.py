"""``python -m ip_to_portrait ...``: the command line (model downloads, running workflows)."""
import sys

from .cli.main import main

sys.exit(main())

"""``python -m benchmarks.gpu``: see the package docstring and docs/gpu_check.md."""

import sys

from benchmarks.gpu.run import main

sys.exit(main())

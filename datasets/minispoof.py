"""Build the minispoof corpus: ``python datasets/minispoof.py --out DIR --seed 0 --size small``.

A thin wrapper around ``python -m amongus.recipes.minispoof`` (same options); see
docs/corpus.md.
"""

import sys

from amongus.recipes.minispoof import main

if __name__ == "__main__":
    sys.exit(main())

"""``python -m digitvae.train``: the ``digitvae train`` command, so that torchrun can start it
(``torchrun ... -m digitvae.train --epochs 2``)."""

import sys

from digitvae.runtime.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))

"""The shipped graphs and their manifest (the repository's artifacts/ folder), found by
``DigitVAE.load()`` with importlib.resources."""

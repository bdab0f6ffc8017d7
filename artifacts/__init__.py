"""The shipped graphs and their manifest, found with importlib.resources."""

"""The error type every expected failure derives from, so the command line can print it
as one line while real bugs still show their traceback."""


class DigitVAEError(RuntimeError):
    """Something outside the code is wrong (a file, the data, the network); the message
    says what, and what to do."""

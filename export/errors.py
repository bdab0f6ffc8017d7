"""Export failures the command line prints as one line."""

from digitvae.runtime.errors import DigitVAEError


class ExportError(DigitVAEError):
    """The export cannot proceed; the previous artifacts are left as they were."""

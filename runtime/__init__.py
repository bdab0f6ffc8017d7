"""digitvae runtime: the three ONNX graphs on onnxruntime, with numpy; never torch.

    from digitvae.runtime import DigitVAE
    vae = DigitVAE.load()
    vae.classify(images)          # (N, 10) probabilities
    vae.generate(7, n=16, seed=0) # the digit 7 in 16 styles

The camera reader (``digitvae.runtime.camera``) needs the ``[camera]`` extra (OpenCV).
"""

from .artifacts import ArtifactError
from .errors import DigitVAEError
from .model import Assessment, DigitVAE

__all__ = ["ArtifactError", "Assessment", "DigitVAE", "DigitVAEError"]
__version__ = "0.1.0"

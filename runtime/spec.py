"""The one place that owns every constant shared by training, export and the runtime.

Training (``digitvae.train``), export (``digitvae.export``) and the runtime
(``digitvae.runtime``) all import from here; nothing else repeats these values. Changing
one of them is a format change: bump ``FORMAT_VERSION`` so that old artifacts are refused
at load instead of being misread.
"""

from __future__ import annotations

from typing import Final

PRODUCT: Final = "digitvae"

#: Version of the artifact format (graph names, input/output names, pixel contract).
#: The runtime refuses a manifest whose ``format_version`` differs.
FORMAT_VERSION: Final = 1

# --- Pixel contract (SPEC section 3) -------------------------------------------------
IMAGE_SIZE: Final = 28  # MNIST frame, pixels per side
DIGIT_BOX: Final = 20  # MNIST fits each digit into a 20x20 box, aspect kept ...
# ... and centres it by centre of mass in the 28x28 frame.
PIXEL_MIN: Final = 0.0  # black background
PIXEL_MAX: Final = 1.0  # white ink
PIXEL_CONTRACT: Final = (
    "float32 (N, 1, 28, 28) in [0, 1], white ink on black, the digit fitted into a 20x20 "
    "box (aspect kept) and centred by centre of mass in the 28x28 frame (MNIST's own "
    "normalisation)"
)

# --- Model --------------------------------------------------------------------------
NUM_CLASSES: Final = 10  # the ten digits; also the width of the decoder's digit vector
DEFAULT_LATENT_SIZE: Final = 16  # the seed used 10; the spec asks for at least 10
MIN_LATENT_SIZE: Final = 10

#: A bolder or lighter pen, as training draws it (``digitvae.train.augment``): this share of
#: the way from a digit to its 3x3 dilation (or erosion). The camera's second look at a
#: doubted crop draws it bolder the same way, so that it shows the classifier a pen it learnt.
PEN_CHANGE: Final = 0.5

# --- ONNX graphs --------------------------------------------------------------------
OPSET: Final = 18
ENCODER_FILE: Final = "encoder.onnx"
DECODER_FILE: Final = "decoder.onnx"
CLASSIFIER_FILE: Final = "classifier.onnx"
GRAPH_FILES: Final = {"encoder": ENCODER_FILE, "decoder": DECODER_FILE, "classifier": CLASSIFIER_FILE}
INT8_SUFFIX: Final = ".int8.onnx"  # encoder.onnx -> encoder.int8.onnx
MANIFEST_FILE: Final = "manifest.json"
CHECKPOINT_FILE: Final = "checkpoint.pt"
GOLDEN_FILE: Final = "golden.npz"

BATCH_AXIS: Final = "batch"
# Input and output names of each graph, in order.
ENCODER_INPUTS: Final = ("image",)
ENCODER_OUTPUTS: Final = ("mu", "logvar")
CLASSIFIER_INPUTS: Final = ("image",)
CLASSIFIER_OUTPUTS: Final = ("logits",)
DECODER_INPUTS: Final = ("z", "digit")
DECODER_OUTPUTS: Final = ("image",)

# --- Runtime limits -----------------------------------------------------------------
#: Largest batch one public call accepts (65,536 images is 205 MB of float32): larger is
#: almost surely a mistake, and is refused with a message instead of exhausting memory.
MAX_BATCH: Final = 65_536

"""Property-based tests: any array in, either a valid result or the documented
ValueError/TypeError out; nothing else escapes and nothing hangs.

A few hundred examples run in CI. The long run (``DIGITVAE_FUZZ_EXAMPLES=10000 pytest
tests/test_properties.py``) is recorded in BENCHMARKS.md.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

EXAMPLES = int(os.environ.get("DIGITVAE_FUZZ_EXAMPLES", "60"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))

DTYPES = st.sampled_from([np.uint8, np.uint16, np.int32, np.float16, np.float32, np.float64, np.bool_, object])
SPECIAL = st.sampled_from([0.0, 1.0, 0.5, -1.0, 255.0, 1e30, -1e30, np.nan, np.inf, -np.inf])


@st.composite
def arrays(draw, shapes):
    """Arrays of awkward dtypes, values and memory layouts (non-contiguous, read-only)."""
    dtype = draw(DTYPES)
    shape = draw(shapes)
    if dtype is object:
        array = np.empty(shape, dtype=object)
        array[...] = draw(st.sampled_from([0.5, "x", None]))
    else:
        fill = draw(SPECIAL)
        with np.errstate(invalid="ignore", over="ignore"):
            array = np.full(shape, fill).astype(dtype) if np.isfinite(fill) or np.dtype(dtype).kind == "f" else np.zeros(shape, dtype)
        if array.size and draw(st.booleans()):
            noise = draw(hnp.arrays(np.float64, shape, elements=st.floats(0, 1)))
            array = noise.astype(dtype) if np.dtype(dtype).kind != "b" else noise > 0.5
    if draw(st.booleans()) and array.ndim >= 1:
        array = np.flip(array, axis=-1)  # a negative-stride view
    if draw(st.booleans()):
        array.setflags(write=False)
    return array


IMAGE_SHAPES = st.one_of(
    st.just((28, 28)), st.just((3, 28, 28)), st.just((2, 1, 28, 28)), st.just((0, 28, 28)),
    hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=30),
)


def check_call(call, *args) -> None:
    try:
        result = call(*args)
    except (ValueError, TypeError) as exc:
        assert str(exc), "errors must say what was expected and what came"
        return
    for value in result if isinstance(result, tuple) else (result,):
        assert isinstance(value, np.ndarray) and value.dtype in (np.float32, np.bool_)
        if value.dtype == np.float32:
            assert np.isfinite(value).all()


@SETTINGS
@given(arrays(IMAGE_SHAPES))
def test_image_calls_return_or_raise_the_documented_errors(shipped_vae, images):
    for call in (shipped_vae.classify, shipped_vae.encode, shipped_vae.reconstruct, shipped_vae.score, shipped_vae.is_digit):
        check_call(call, images)


@SETTINGS
@given(arrays(st.one_of(st.just((2, 16)), hnp.array_shapes(min_dims=0, max_dims=3, max_side=20))),
       st.one_of(arrays(st.one_of(st.just((2,)), st.just((2, 10)), hnp.array_shapes(max_dims=2, max_side=12))),
                 st.integers(-5, 15)))
def test_decode_returns_or_raises(shipped_vae, z, digits):
    check_call(shipped_vae.decode, z, digits)


@SETTINGS
@given(st.one_of(st.integers(-3, 12), st.floats(allow_nan=True), st.none(), st.text(max_size=2)),
       st.one_of(st.integers(-2, 40), st.floats(), st.none()),
       st.one_of(st.none(), st.integers(-2, 2**40), st.floats()))
def test_generate_returns_or_raises(shipped_vae, digit, n, seed):
    check_call(shipped_vae.generate, digit, n, seed)


@SETTINGS
@given(arrays(IMAGE_SHAPES), st.lists(st.integers(-2, 12), max_size=12))
def test_restyle_returns_or_raises(shipped_vae, image, digits):
    check_call(shipped_vae.restyle, image, digits)


@pytest.mark.parametrize("shape", [(0, 0), (1, 1), (28, 28, 4), (64, 64, 2)])
def test_fixed_awkward_shapes_raise_value_error(shipped_vae, shape):
    with pytest.raises(ValueError):
        shipped_vae.classify(np.zeros(shape, np.float32))


FRAME_SHAPES = st.one_of(
    hnp.array_shapes(min_dims=2, max_dims=2, min_side=0, max_side=120),
    st.tuples(st.integers(0, 90), st.integers(0, 90), st.integers(1, 4)),
    st.just((480, 640, 3)), st.just((2, 3, 4, 5)), st.just((7,)),
)


@SETTINGS
@given(arrays(FRAME_SHAPES))
def test_reader_returns_detections_or_raises(shipped_vae, frame):
    pytest.importorskip("cv2")
    from digitvae.runtime.camera import DigitReader

    try:
        detections = DigitReader(shipped_vae).read(frame)
    except (ValueError, TypeError) as exc:
        assert str(exc)
        return
    for d in detections:
        assert d.crop.shape == (28, 28) and d.crop.dtype == np.float32 and 0 <= d.digit <= 9
        assert 0 <= d.probability <= 1 and isinstance(d.is_digit, bool)


def test_reader_handles_a_huge_frame(shipped_vae):
    pytest.importorskip("cv2")
    from digitvae.runtime.camera import DigitReader

    assert isinstance(DigitReader(shipped_vae).read(np.full((8000, 8000), 255, np.uint8)), list)

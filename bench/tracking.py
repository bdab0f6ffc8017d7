"""How steady the reading of a held sheet is, frame by frame and with the tracker (issue 21).

Clips come from :mod:`digitvae.data.clips` (the sample clip, slow drift, shake, a hand
passing, scene cuts), each read once by a ``DigitReader``; the reader's detections are
then shown as they are ("frame by frame") or through a :class:`DigitTracker`, and scored
against each frame's truth:

* flicker: the share of frames whose shown reading (the digits, line by line, as the demo
  prints them) differs from the previous frame's while the truth (the sheet, and which of
  its digits are in view) is the same;
* frames right: the share of frames where every digit in view is shown and read right,
  nothing is shown where no digit is (nor on a hidden one), and digits partly in view are
  read right if shown;
* digits right: the share of digits in view shown and read right, over all frames;
* delay: frames from a digit coming into view (a new sheet, or from under the hand) to the
  first frame it is shown read right (0: that same frame); "never" when it left first;
* tracker cost: median time of ``DigitTracker.track`` per frame (the reading not included).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from digitvae.data.clips import HIDDEN, SEEN, ClipFrame, held_clip
from digitvae.data.frames import FrameGenerator
from digitvae.runtime.tracker import DigitTracker
from .evaluate import match_boxes

KINDS = ("sample", "drift", "shake", "hand", "cut")
WITHIN = 2  # the "a new digit shown within 3 frames": a delay of at most 2


@dataclass
class Clip:
    """One clip read by the reader: its truth per frame (images dropped) and detections."""

    kind: str
    seed: int
    truth: list[ClipFrame]
    detections: list[list[Any]]
    shape: tuple[int, int]


def read_clips(reader: Any, kinds: tuple[str, ...], n_frames: int, seeds: list[int]) -> list[Clip]:
    """Every kind of clip for every seed, read frame by frame (the slow part, done once)."""
    clips = []
    for seed in seeds:
        gen = FrameGenerator.from_mnist(seed)
        for kind in kinds:
            truth, detections, shape = [], [], (0, 0)
            for frame in held_clip(kind, n_frames, seed, generator=gen):
                detections.append(reader.read(frame.image))
                shape = frame.image.shape[:2]
                truth.append(dataclasses.replace(frame, image=np.zeros((0, 0, 3), np.uint8)))
            clips.append(Clip(kind, seed, truth, detections, shape))
    return clips


def tracked(clip: Clip, **params: Any) -> list[list[Any]]:
    """The clip's detections through a fresh tracker: what it shows, frame by frame."""
    tracker = DigitTracker(**params)
    return [tracker.track(found, shape=clip.shape) for found in clip.detections]


def text(shown: list[Any]) -> str:
    """The reading as the demo prints it: accepted digits, line by line."""
    lines: dict[int, str] = {}
    for d in shown:
        if d.is_digit:
            lines[d.line] = lines.get(d.line, "") + str(d.digit)
    return " / ".join(lines[k] for k in sorted(lines))


def judge(truth: ClipFrame, shown: list[Any]) -> tuple[bool, set[int], int]:
    """(the frame is right, indices of its digits shown right, spurious digits shown)."""
    accepted = [d for d in shown if d.is_digit]
    match = match_boxes(list(truth.boxes), [d.box for d in accepted])
    right: set[int] = set()
    ok = True
    for t, (digit, view) in enumerate(zip(truth.digits, truth.views)):
        j = match.get(t)
        if j is None:
            ok = ok and view != SEEN
        elif view == HIDDEN or accepted[j].digit != digit:
            ok = False
        else:
            right.add(t)
    spurious = len(accepted) - len(match)
    return ok and not spurious, right, spurious


def score(truth: list[ClipFrame], shown: list[list[Any]]) -> dict[str, Any]:
    """The figures of one clip (see the module docstring), as counts."""
    out = {"frames": len(truth), "steady": 0, "flicker": 0, "right": 0, "seen": 0, "seen_right": 0,
           "spurious": 0, "delays": [], "never": 0}
    waiting: dict[int, int] = {}  # digit index -> frame it came into view
    for k, (now, reading) in enumerate(zip(truth, shown)):
        ok, right, spurious = judge(now, reading)
        out["right"] += ok
        out["spurious"] += spurious
        out["seen"] += now.views.count(SEEN)
        out["seen_right"] += sum(1 for t in right if now.views[t] == SEEN)
        before = truth[k - 1] if k else None
        if before is not None and before.truth == now.truth:
            out["steady"] += 1
            out["flicker"] += text(reading) != text(shown[k - 1])
        new_sheet = before is None or before.sheet != now.sheet
        for t in list(waiting):  # left view (or the sheet went) before it was read right
            if new_sheet or now.views[t] != SEEN:
                out["never"] += 1
                del waiting[t]
        for t, view in enumerate(now.views):
            if view == SEEN and (new_sheet or before.views[t] != SEEN):
                waiting[t] = k
        for t in [t for t in waiting if t in right]:
            out["delays"].append(k - waiting.pop(t))
    out["never"] += len(waiting)
    return out


def summary(counts: list[dict[str, Any]]) -> dict[str, Any]:
    """Clips' counts added up, as shares."""
    total = {k: sum(c[k] for c in counts) for k in ("frames", "steady", "flicker", "right", "seen", "seen_right",
                                                     "spurious", "never")}
    delays = np.array([d for c in counts for d in c["delays"]], np.float64)
    return {**total,
            "flicker_share": total["flicker"] / max(total["steady"], 1),
            "right_share": total["right"] / max(total["frames"], 1),
            "digits_right_share": total["seen_right"] / max(total["seen"], 1),
            "spurious_per_100": 100 * total["spurious"] / max(total["frames"], 1),
            "appearances": len(delays) + total["never"],
            "delay_mean": float(delays.mean()) if len(delays) else float("nan"),
            "delay_max": int(delays.max()) if len(delays) else 0,
            "shown_within": float((delays <= WITHIN).sum() / max(len(delays) + total["never"], 1))}


def compare(clips: list[Clip], variants: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per kind and over all clips: frame by frame, and the tracker with each variant's settings."""
    kinds = sorted({c.kind for c in clips}, key=[c.kind for c in clips].index)
    out: dict[str, dict[str, Any]] = {}
    for name, params in {"frame by frame": None, **variants}.items():
        counts = [(c.kind, score(c.truth, c.detections if params is None else tracked(c, **params))) for c in clips]
        out[name] = {kind: summary([n for k, n in counts if k == kind]) for kind in kinds}
        out[name]["all"] = summary([n for _, n in counts])
    return out


def tracker_cost(clips: list[Clip], repeats: int = 3) -> dict[str, float]:
    """Median and 90th-percentile milliseconds of ``DigitTracker.track`` per frame."""
    times = []
    for _ in range(repeats):
        for clip in clips:
            tracker = DigitTracker()
            for found in clip.detections:
                t0 = time.perf_counter()
                tracker.track(found, shape=clip.shape)
                times.append(time.perf_counter() - t0)
    ms = 1e3 * np.array(times)
    found = np.array([len(f) for c in clips for f in c.detections])
    return {"median_ms": float(np.median(ms)), "p90_ms": float(np.percentile(ms, 90)),
            "frames": len(times), "detections_per_frame": float(found.mean())}


def markdown_lines(results: dict[str, Any]) -> list[str]:
    """The BENCHMARKS.md table: each kind of clip, frame by frame against the tracker."""
    lines = ["| clip | reading | flicker | frames right | digits right | spurious / 100 frames "
             "| shown right within 3 frames | mean delay (max) |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    table = results["figures"]
    for kind in next(iter(table.values())):
        for name, by_kind in table.items():
            s = by_kind[kind]
            lines.append(f"| {kind} | {name} | {100 * s['flicker_share']:.2f}% ({s['flicker']}/{s['steady']}) "
                         f"| {100 * s['right_share']:.1f}% | {100 * s['digits_right_share']:.2f}% "
                         f"| {s['spurious_per_100']:.1f} | {100 * s['shown_within']:.1f}% of {s['appearances']} "
                         f"| {s['delay_mean']:.2f} ({s['delay_max']}) |")
    c = results["cost"]
    return lines + ["", f"Tracker cost: {c['median_ms']:.3f} ms per frame median, {c['p90_ms']:.3f} ms p90 "
                        f"({c['frames']} frames, {c['detections_per_frame']:.1f} detections each on average)."]

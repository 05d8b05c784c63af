"""The diarization pipeline (needs torch: the ``diarize`` extra).

1. pyannote segmentation-3.0 on 10 s windows (``step`` apart): per window, up to 3 local
   speakers frame by frame (17 ms frames), overlapped speech included.
2. Per frame, how many speakers talk: the windows' local counts averaged (weighted towards
   each window's centre).
3. Single-speaker speech cut into chunks: at pauses, where the segmentation model sees
   another speaker take over, and every ``max_chunk`` seconds. A CAM++ embedding per chunk
   of at least ``min_chunk`` seconds (each second of speech is embedded once).
4. Agglomerative clustering of the chunk embeddings (cosine, average linkage) cut at
   ``threshold`` (or at ``num_speakers``; clipped to ``min``/``max_speakers``); two chunks
   that one segmentation window hears as different local speakers are kept apart (their
   distance + ``cannot_link``); clusters with little speech join their nearest neighbour.
5. Frames of embedded chunks take their chunk's speaker. Each window's local speakers map
   to distinct speakers by those labelled frames, which gives the rest (overlapped speech,
   short bits): per frame, the ``count`` speakers most active across the windows.
6. Frames to turns: same-speaker gaps under ``min_gap`` filled, turns under ``min_turn``
   dropped.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

from ..errors import TranscriptionCancelled
from . import cluster, weights
from .campplus import CAMPPlus
from .fbank import fbank
from .options import DiarizeOptions
from .segmentation import FRAME_DURATION, FRAME_STEP, PyanNet, powerset_mapping
from .turns import Diarization, Turn, merge_turns

SAMPLE_RATE = 16_000
WINDOW = 160_000  # samples: segmentation-3.0 was trained on 10 s chunks
_FRAME_SAMPLES = 270


StopCheck = Callable[[], bool]


def _never() -> bool:
    return False


def _check(stop: StopCheck) -> None:
    if stop():
        raise TranscriptionCancelled("speaker diarization stopped")


class Diarizer:
    """Loaded models; :meth:`__call__` diarizes 16 kHz mono float32 audio. Thread-safe (one
    call at a time per instance). ``threads``: torch's intra-op threads during a call (set
    and restored around it; ``None`` leaves torch's setting alone). One thread is the
    default: the models are small, and on a busy 2-core machine two threads ran 10x slower.
    """

    def __init__(self, threads: int | None = 1) -> None:
        self.threads = threads
        seg_state = torch.load(
            weights.locate(weights.SEGMENTATION), map_location="cpu", weights_only=True
        )
        self.segmentation = PyanNet()
        self.segmentation.load_state_dict(seg_state["state_dict"], strict=True)
        self.segmentation.eval()
        self.embedding = CAMPPlus()
        self.embedding.load_state_dict(
            torch.load(weights.locate(weights.CAMPPLUS), map_location="cpu", weights_only=True),
            strict=True,
        )
        self.embedding.eval()
        self._mapping = powerset_mapping()
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()

    def submit(
        self,
        audio: npt.NDArray[np.float32],
        options: DiarizeOptions | None = None,
        should_stop: StopCheck | None = None,
    ) -> Future[Diarization]:
        """Diarize in this instance's background thread (``.result()`` waits): started
        before a transcription, it runs while CTranslate2 decodes, so ``--diarize`` costs
        little more wall time than the word timestamps it needs. ``should_stop`` is asked
        between model calls: once it says yes, the call ends with
        :class:`malsori.errors.TranscriptionCancelled` (a server request whose client left)."""
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="malsori-diarize")
        return self._executor.submit(self, audio, options, should_stop)

    def __call__(
        self,
        audio: npt.NDArray[np.float32],
        options: DiarizeOptions | None = None,
        should_stop: StopCheck | None = None,
    ) -> Diarization:
        opts = options or DiarizeOptions()
        opts.check()
        return decide(self.analyse(audio, opts, should_stop), len(audio) / SAMPLE_RATE, opts)

    # -- stages ---------------------------------------------------------------------------

    def _segment(
        self, audio: npt.NDArray[np.float32], step: int, batch_size: int, stop: StopCheck
    ) -> tuple[list[int], npt.NDArray[np.bool_]]:
        """Window starts (samples) and (windows, frames, 3) local speaker activity."""
        n = len(audio)
        last = max(0, n - WINDOW)
        starts = list(range(0, last + 1, step))
        if starts[-1] != last:
            starts.append(last)
        padded = audio if n >= WINDOW else np.pad(audio, (0, WINDOW - n))  # no copy of long audio
        outputs = []
        for i in range(0, len(starts), batch_size):  # one batch of windows in memory at once
            _check(stop)
            chunks = np.stack([padded[s : s + WINDOW] for s in starts[i : i + batch_size]])
            batch = torch.from_numpy(chunks).unsqueeze(1)
            outputs.append(self.segmentation(batch).argmax(dim=-1))
        classes = torch.cat(outputs)
        active = self._mapping[classes].numpy() > 0.5
        return starts, active

    def _embed(self, samples: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        feats = fbank(torch.from_numpy(samples))
        feats = feats - feats.mean(dim=0, keepdim=True)
        emb = self.embedding(feats.unsqueeze(0))[0].double().numpy()
        out: npt.NDArray[np.float64] = emb / max(float(np.linalg.norm(emb)), 1e-12)
        return out

    def analyse(
        self,
        audio: npt.NDArray[np.float32],
        options: DiarizeOptions | None = None,
        should_stop: StopCheck | None = None,
    ) -> Analysis | None:
        """Stages 1-3 (the model work); ``None`` for audio with no samples to analyse.
        :func:`decide` turns the result into turns, so the settings of stages 4-6 can be
        swept without running the models again (benchmarks/diarize.py)."""
        opts = options or DiarizeOptions()
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        if len(audio) < 400 or not np.any(audio):
            return None
        with self._lock, torch.inference_mode(), _threads(self.threads):
            return self._analyse(audio, opts, should_stop or _never)

    def _analyse(
        self, audio: npt.NDArray[np.float32], opts: DiarizeOptions, stop: StopCheck
    ) -> Analysis:
        step = max(_FRAME_SAMPLES, round(opts.step * SAMPLE_RATE))
        starts, active = self._segment(audio, step, opts.batch_size, stop)
        geo = _Geometry(len(audio), starts, active.shape[1])
        count_sum = np.zeros(geo.total)
        for off, act in zip(geo.offsets, active, strict=True):
            count_sum[off : off + geo.width] += act.sum(axis=1) * geo.weight
        count = np.rint(count_sum / np.maximum(geo.weight_sum, 1e-9)).astype(np.int64)
        count[geo.n_frames :] = 0
        chunks = _chunks(active, geo, count, opts)
        embs = []
        for a, b in chunks:
            _check(stop)
            embs.append(self._embed(audio[a * _FRAME_SAMPLES : b * _FRAME_SAMPLES]))
        return Analysis(
            num_samples=len(audio),
            starts=starts,
            active=active,
            count=count,
            chunks=chunks,
            embeddings=np.stack(embs) if embs else np.zeros((0, 192)),
        )


class _Geometry:
    """Where each window's frames fall on the recording's frame grid."""

    def __init__(self, num_samples: int, starts: list[int], width: int) -> None:
        self.width = width
        self.n_frames = round(num_samples / _FRAME_SAMPLES)
        self.offsets = [round(s / _FRAME_SAMPLES) for s in starts]
        self.total = max(self.n_frames, self.offsets[-1] + width)
        self.weight = np.hamming(width + 2)[1:-1] + 1e-3
        self.weight_sum = np.zeros(self.total)
        for off in self.offsets:
            self.weight_sum[off : off + width] += self.weight
        # The window whose centre is nearest to each frame (it always covers the frame).
        centres = np.array(self.offsets) + width / 2
        midpoints = (centres[1:] + centres[:-1]) / 2
        self.nearest = np.searchsorted(midpoints, np.arange(self.total), side="right")


def _chunks(
    active: npt.NDArray[np.bool_],
    geo: _Geometry,
    count: npt.NDArray[np.int64],
    opts: DiarizeOptions,
) -> list[tuple[int, int]]:
    """Frame ranges [a, b) of single-speaker speech to embed (stage 3)."""
    g = np.arange(geo.total)
    w = geo.nearest
    local = active[w, np.clip(g - np.array(geo.offsets)[w], 0, geo.width - 1)]  # nearest window's
    single = (count == 1) & (local.sum(axis=1) == 1)
    who = np.where(single, local.argmax(axis=1), -1)
    # The speaker one frame earlier, seen from the same (current frame's nearest) window.
    prev_i = g - 1 - np.array(geo.offsets)[w]
    prev_local = active[w, np.clip(prev_i, 0, geo.width - 1)]
    prev_who = np.where(prev_local.sum(axis=1) == 1, prev_local.argmax(axis=1), -1)
    prev_who = np.where(prev_i >= 0, prev_who, np.roll(who, 1))
    starts_here = single & ((np.roll(who, 1) == -1) | (prev_who != who))
    starts_here[0] = single[0]
    max_len = max(1, int(opts.max_chunk / FRAME_STEP))
    min_len = int(opts.min_chunk / FRAME_STEP)
    out: list[tuple[int, int]] = []
    begin = -1
    for frame in range(geo.total + 1):
        end_run = frame == geo.total or not single[frame] or starts_here[frame]
        if begin >= 0 and end_run:
            length = frame - begin
            pieces = max(1, int(np.ceil(length / max_len)))
            edges = np.linspace(begin, frame, pieces + 1).round().astype(int)
            out.extend((int(a), int(b)) for a, b in itertools.pairwise(edges) if b - a >= min_len)
            begin = -1
        if frame < geo.total and single[frame] and begin < 0:
            begin = frame
    return out


@dataclass(eq=False)  # identity: == would compare its numpy arrays
class Analysis:
    """What the models found in one recording (stages 1-3)."""

    num_samples: int
    starts: list[int]  # window starts, samples
    active: npt.NDArray[np.bool_]  # (windows, frames, 3) local speaker activity
    count: npt.NDArray[np.int64]  # speakers per frame
    chunks: list[tuple[int, int]]  # embedded single-speaker frame ranges
    embeddings: npt.NDArray[np.float64]  # (chunks, 192), L2-normalised


def decide(analysis: Analysis | None, duration: float, opts: DiarizeOptions) -> Diarization:
    """Stages 4-6: clustering, reconstruction, turns."""
    if analysis is None or len(analysis.embeddings) == 0:
        return Diarization([], duration)
    active = analysis.active
    geo = _Geometry(analysis.num_samples, analysis.starts, active.shape[1])
    count = analysis.count
    lengths = np.array([b - a for a, b in analysis.chunks], dtype=np.float64) * FRAME_STEP
    apart = _cannot_link(active, geo, analysis.chunks)
    centres = _cluster(analysis.embeddings, lengths, apart, opts)
    chunk_label = (analysis.embeddings @ centres.T).argmax(axis=1)
    n_clusters = len(centres)
    frame_label = np.full(geo.total, -1)
    for (a, b), c in zip(analysis.chunks, chunk_label, strict=True):
        frame_label[a:b] = c

    # Each window's local speakers -> distinct speakers, by the labelled frames they cover.
    score_sum = np.zeros((geo.total, n_clusters))
    onehot = np.zeros((geo.total, n_clusters + 1))
    onehot[np.arange(geo.total), frame_label] = 1.0  # column -1: unlabelled
    for w, off in enumerate(geo.offsets):
        act = active[w].astype(np.float64)  # (width, 3)
        votes = act.T @ onehot[off : off + geo.width, :n_clusters]  # (3, clusters)
        rows = [k for k in range(act.shape[1]) if votes[k].sum() > 0]
        if not rows:
            continue
        share = votes[rows] / votes[rows].sum(axis=1, keepdims=True)
        local = np.zeros((geo.width, n_clusters))
        for k, c in zip(rows, _assign(share), strict=True):
            np.maximum(local[:, c], act[:, k], out=local[:, c])
        score_sum[off : off + geo.width] += local * geo.weight[:, None]
    score = score_sum / np.maximum(geo.weight_sum, 1e-9)[:, None]
    labelled = frame_label >= 0
    score[labelled, frame_label[labelled]] += 2.0  # an embedded chunk's speaker comes first

    # Per frame, the `count` most likely speakers.
    ranked = np.argsort(-score, axis=1, kind="stable")
    labels = np.zeros((geo.total, n_clusters), dtype=bool)
    everyone = np.arange(geo.total)
    for top in range(min(n_clusters, int(count.max(initial=0)))):
        on = (count > top) & (score[everyone, ranked[:, top]] > 0)
        labels[np.flatnonzero(on), ranked[on, top]] = True
    return _to_diarization(labels[: geo.n_frames], duration, opts)


def _cannot_link(
    active: npt.NDArray[np.bool_], geo: _Geometry, chunks: list[tuple[int, int]]
) -> set[tuple[int, int]]:
    """Pairs of chunks (i < j) that some segmentation window holds whole and hears as two
    different local speakers (each chunk >= 80% one local speaker)."""
    apart: set[tuple[int, int]] = set()
    begins = np.array([a for a, _ in chunks], dtype=np.int64)
    ends = np.array([b for _, b in chunks], dtype=np.int64)
    for w, off in enumerate(geo.offsets):
        lo, hi = np.searchsorted(begins, off), np.searchsorted(begins, off + geo.width)
        who: dict[int, int] = {}
        for i in range(lo, hi):
            if ends[i] <= off + geo.width:
                share = active[w, begins[i] - off : ends[i] - off].mean(axis=0)
                if share.max() >= 0.8:
                    who[i] = int(share.argmax())
        apart.update((i, j) for i, j in itertools.combinations(who, 2) if who[i] != who[j])
    return apart


def _cluster(
    matrix: npt.NDArray[np.float64],
    speech: npt.NDArray[np.float64],
    apart: set[tuple[int, int]],
    opts: DiarizeOptions,
) -> npt.NDArray[np.float64]:
    """Cluster centroids, (k, dim), from the embeddings with enough speech (``apart``: pairs
    of chunks kept apart by ``opts.cannot_link``)."""
    train = speech >= opts.min_embed_speech
    if train.sum() < 2:
        train = speech >= speech.max() * 0.5
    x = matrix[train]
    row = np.cumsum(train) - 1  # chunk index -> row of x
    kept = [(int(row[i]), int(row[j])) for i, j in apart if train[i] and train[j]]
    merges = cluster.linkage(x, kept, opts.cannot_link)
    n = len(x)
    if opts.num_speakers is not None:
        labels = cluster.cut(merges, n, num_clusters=opts.num_speakers)
    else:
        labels = cluster.cut(merges, n, threshold=opts.threshold)
        k = int(labels.max()) + 1
        lo = opts.min_speakers or 1
        hi = opts.max_speakers or n
        if k < lo or k > hi:
            labels = cluster.cut(merges, n, num_clusters=min(max(k, lo), hi))
        else:
            labels = _absorb_small(x, labels, speech[train], opts, lo)
    return cluster.centroids(x, labels)


def _absorb_small(
    x: npt.NDArray[np.float64],
    labels: npt.NDArray[np.int64],
    speech: npt.NDArray[np.float64],
    opts: DiarizeOptions,
    keep_at_least: int,
) -> npt.NDArray[np.int64]:
    """Clusters with under ``min_cluster_share`` of the largest one's speech join the most
    similar larger cluster (but at least ``keep_at_least`` clusters stay)."""
    labels = labels.copy()
    while True:
        k = int(labels.max()) + 1
        amount = np.array([speech[labels == c].sum() for c in range(k)])
        small = int(np.argmin(amount))
        if k <= keep_at_least or amount[small] >= opts.min_cluster_share * amount.max():
            break
        cents = cluster.centroids(x, labels)
        sims = cents @ cents[small]
        sims[small] = -np.inf
        target = int(np.argmax(sims))
        labels[labels == small] = target
        _, labels = np.unique(labels, return_inverse=True)
        labels = labels.astype(np.int64)
    return labels


def _assign(sim: npt.NDArray[np.float64]) -> list[int]:
    """The most similar assignment of a window's local speakers (rows) to distinct clusters
    (columns); when there are fewer clusters than speakers, each takes its nearest."""
    rows, cols = sim.shape
    if cols < rows:
        return [int(c) for c in sim.argmax(axis=1)]
    best: tuple[int, ...] = ()
    best_score = -np.inf
    for perm in itertools.permutations(range(cols), rows):
        s = float(sim[np.arange(rows), list(perm)].sum())
        if s > best_score:
            best, best_score = perm, s
    return list(best)


def _to_diarization(
    labels: npt.NDArray[np.bool_], duration: float, opts: DiarizeOptions
) -> Diarization:
    turns: list[Turn] = []
    half = FRAME_STEP / 2
    centre = FRAME_DURATION / 2
    for c in range(labels.shape[1]):
        padded = np.concatenate([[False], labels[:, c], [False]]).astype(np.int8)
        edges = np.flatnonzero(np.diff(padded))
        for a, b in zip(edges[::2], edges[1::2], strict=True):
            start = max(0.0, a * FRAME_STEP + centre - half)
            end = min(duration, (b - 1) * FRAME_STEP + centre + half)
            turns.append(Turn(start, end, str(c)))
    turns = [t for t in merge_turns(turns, gap=opts.min_gap) if t.duration >= opts.min_turn]
    names: dict[str, str] = {}
    for t in sorted(turns, key=lambda t: t.start):
        names.setdefault(t.speaker, f"SPEAKER_{len(names) + 1}")
    return Diarization([Turn(t.start, t.end, names[t.speaker]) for t in turns], duration)


class _threads:
    """Temporarily set torch's intra-op thread count (restored afterwards)."""

    def __init__(self, threads: int | None) -> None:
        self.threads = threads
        self.saved = 0

    def __enter__(self) -> None:
        if self.threads:
            self.saved = torch.get_num_threads()
            torch.set_num_threads(self.threads)

    def __exit__(self, *exc: object) -> None:
        if self.threads:
            torch.set_num_threads(self.saved)


__all__ = ["Analysis", "DiarizeOptions", "Diarizer", "decide"]

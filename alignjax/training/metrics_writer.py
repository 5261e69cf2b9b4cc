"""Writing training metrics as JSON lines and TensorBoard events.

Each record is one line of ``metrics.jsonl``, ``{"step": 10, "loss": 0.69, ...}``,
always strict JSON (a NaN or infinite value is written as ``null``), appended so
that a resumed run continues the same file, and the same scalars go to
TensorBoard event files in ``tensorboard/`` (through tensorboardX, without
TensorFlow). Only process 0 writes: the metrics of a multi-host run are global.
"""

from __future__ import annotations

import json
import math
import pathlib
from collections.abc import Mapping

import jax


class MetricsWriter:
    """Appends metric records to ``<workdir>/metrics.jsonl`` and TensorBoard.

    Args:
        workdir: directory to write into; ``None`` writes nothing.

    Example:
        >>> import tempfile
        >>> workdir = tempfile.mkdtemp()
        >>> with MetricsWriter(workdir) as writer:
        ...   writer.write(1, {"loss": 0.5})
        >>> open(f"{workdir}/metrics.jsonl").read()
        '{"step": 1, "loss": 0.5}\\n'
    """

    def __init__(self, workdir: str | pathlib.Path | None):
        self._jsonl = None
        self._tensorboard = None
        if workdir is None or jax.process_index() != 0:
            return
        workdir = pathlib.Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        self._jsonl = open(workdir / "metrics.jsonl", "a", encoding="utf-8")
        # Imported here: tensorboardX pulls in protobuf, which a run without a
        # workdir (tests, notebooks) need not pay for.
        from tensorboardX import SummaryWriter

        self._tensorboard = SummaryWriter(str(workdir / "tensorboard"))

    def write(self, step: int, metrics: Mapping[str, float]) -> None:
        """Records ``metrics`` (name to number) at ``step``."""
        if self._jsonl is None:
            return
        record = {"step": int(step)}
        record.update({name: float(value) for name, value in metrics.items()})
        # json writes NaN and Infinity, which strict JSON readers reject; null keeps
        # every line parseable (allow_nan=False makes sure none slips through).
        line = {k: (None if not math.isfinite(v) else v) for k, v in record.items()}
        self._jsonl.write(json.dumps(line, allow_nan=False) + "\n")
        self._jsonl.flush()
        for name, value in record.items():
            if name != "step":
                self._tensorboard.add_scalar(name, value, global_step=int(step))

    def close(self) -> None:
        if self._jsonl is not None:
            self._jsonl.close()
            self._tensorboard.close()
            self._jsonl = None
            self._tensorboard = None

    def __enter__(self) -> MetricsWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

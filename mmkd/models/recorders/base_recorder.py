"""Base class of recorders: objects that capture intermediate tensors of a model."""
from __future__ import annotations

from typing import Any, Callable, List, Optional

from torch import nn


class BaseRecorder:
    """Capture values produced inside a model while a recording context is open.

    A recorder is prepared once for a model (:meth:`prepare_from_model`), which checks
    that ``source`` exists there. Values are only captured between
    :meth:`start_recording` and :meth:`stop_recording`; starting a new recording
    clears the previous step's values. When the source runs several times in one
    step (a shared head over FPN levels, a recurrent block) every call is kept in
    order and ``record_idx`` picks one.

    Args:
        source (str): what to record; its meaning depends on the subclass (a module
            path such as ``'neck'`` or ``'backbone.layer4.1'``, a method path, a
            function path).
    """

    def __init__(self, source: str) -> None:
        if not isinstance(source, str) or not source:
            raise TypeError(f'recorder source must be a non-empty string, got {source!r}')
        self.source = source
        self.data_buffer: List[Any] = []
        self.recording = False
        # Called after every capture; RecorderManager uses it for early exit.
        self.on_record: Optional[Callable[[], None]] = None

    def prepare_from_model(self, model: Optional[nn.Module] = None) -> None:
        """Check ``source`` against ``model`` and install what capturing needs."""

    def start_recording(self) -> None:
        self.data_buffer = []
        self.recording = True

    def stop_recording(self) -> None:
        self.recording = False

    def reset_data_buffer(self) -> None:
        self.data_buffer = []

    def _record(self, value: Any) -> None:
        """Keep ``value`` (only while recording) and notify the manager."""
        if self.recording:
            self.data_buffer.append(value)
            if self.on_record is not None:
                self.on_record()

    def get_record_data(self, record_idx: int = 0, data_idx: Optional[int] = None) -> Any:
        """Return the ``record_idx``-th captured value, optionally its ``data_idx`` item."""
        if not self.data_buffer:
            raise RuntimeError(
                f'{type(self).__name__}(source={self.source!r}) recorded nothing in this '
                'step: the source did not run in the forward that was recorded (check the '
                "forward mode, e.g. teacher_forward_mode='tensor' skips the losses).")
        if record_idx >= len(self.data_buffer) or record_idx < -len(self.data_buffer):
            raise IndexError(
                f'record_idx={record_idx} but {self.source!r} ran '
                f'{len(self.data_buffer)} time(s) in this step; valid: '
                f'0..{len(self.data_buffer) - 1}')
        value = self.data_buffer[record_idx]
        if data_idx is None:
            return value
        if not isinstance(value, (list, tuple)):
            raise TypeError(
                f'data_idx={data_idx} was given but {self.source!r} produced a '
                f'{type(value).__name__}, not a tuple/list; drop data_idx')
        if data_idx >= len(value) or data_idx < -len(value):
            raise IndexError(
                f'data_idx={data_idx} but {self.source!r} produced {len(value)} items; '
                f'valid: 0..{len(value) - 1}')
        return value[data_idx]

    # Recording contexts for the step -------------------------------------------
    def __enter__(self):
        self.start_recording()
        return self

    def __exit__(self, *exc) -> None:
        self.stop_recording()

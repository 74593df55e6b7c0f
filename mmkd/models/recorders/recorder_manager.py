"""A named group of recorders prepared for one model."""
from __future__ import annotations

from typing import Dict, Optional

from torch import nn

from mmkd.registry import MODELS

from .base_recorder import BaseRecorder


class EarlyExit(Exception):
    """Raised inside a forward once every recorder has what the losses need."""


class RecorderManager:
    """Build recorders from configs, prepare them on a model, record as a context.

    Args:
        recorders (dict): name -> recorder config or instance.
        side (str): 'student' or 'teacher', used in error messages.
        key (str, optional): the config key of these recorders, named in errors
            (default ``'<side>_recorders'``).
    """

    def __init__(self, recorders: Optional[Dict] = None, side: str = 'student',
                 key: Optional[str] = None) -> None:
        self.side = side
        self.key = key or f'{side}_recorders'
        self.recorders: Dict[str, BaseRecorder] = {}
        for name, cfg in (recorders or {}).items():
            if isinstance(cfg, BaseRecorder):
                self.recorders[name] = cfg
                continue
            if not isinstance(cfg, dict) or 'type' not in cfg:
                raise TypeError(
                    f'{self.key}.{name} must be a dict with a "type" key '
                    f"(e.g. dict(type='ModuleOutputs', source='neck')), got {cfg!r}")
            try:
                self.recorders[name] = MODELS.build(cfg)
            except KeyError as err:
                raise KeyError(f'{self.key}.{name}: {err}') from None

    def set_early_exit(self, needs: Optional[Dict[str, Optional[int]]]) -> None:
        """Stop the recorded forward once each recorder has ``needs[name]`` captures.

        ``needs`` maps recorder name -> number of calls the losses read (max
        record_idx + 1), or None when a loss reads a call counted from the end
        (then the forward always runs to completion). ``None`` disables early exit.
        """
        self._needs = None
        if needs is None or any(v is None for v in needs.values()) or not needs:
            for recorder in self.recorders.values():
                recorder.on_record = None
            return
        self._needs = {self.recorders[name]: count for name, count in needs.items()}
        for recorder in self.recorders.values():
            recorder.on_record = self._check_done

    def _check_done(self) -> None:
        if all(len(rec.data_buffer) >= count for rec, count in self._needs.items()):
            raise EarlyExit

    def prepare_from_model(self, model: nn.Module) -> None:
        for name, recorder in self.recorders.items():
            try:
                recorder.prepare_from_model(model)
            except (ValueError, TypeError) as err:
                raise ValueError(f'{self.key}.{name}: {err}') from None

    def get_recorder(self, name: str) -> BaseRecorder:
        if name not in self.recorders:
            raise KeyError(
                f'recorder {name!r} is not declared in {self.key}; '
                f'declared: {sorted(self.recorders)}')
        return self.recorders[name]

    def reset(self) -> None:
        for recorder in self.recorders.values():
            recorder.reset_data_buffer()

    def __enter__(self) -> 'RecorderManager':
        for recorder in self.recorders.values():
            recorder.start_recording()
        return self

    def __exit__(self, *exc) -> None:
        for recorder in self.recorders.values():
            recorder.stop_recording()

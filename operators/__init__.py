"""Neural-operator models, training, evaluation, checkpoints and the ``pdeop`` command line.

Public API (imported on first use, so ``import operators`` and ``pdeop --help`` stay fast)::

    operators.build(config)          # a model from {"model": "fno", ...} or a config dataclass
    operators.save(model, directory, normalizers=..., grid=..., dataset=..., extra=...)
    operators.load(directory)        # an Operator: model + normalisers + metadata, in eval mode
    operators.checkpoint_metadata(directory)      # config.json's checked contents, no weights read
    operators.register_model(name, ConfigClass)   # class decorator for new models

Models: :class:`FNO`/:class:`TFNO` (:class:`FNOConfig`/:class:`TFNOConfig`), :class:`DeepONet`
(:class:`DeepONetConfig`), :class:`MgNO` (:class:`MgNOConfig`, presets in ``MGNO_PRESETS``),
:class:`KANFNO` and :class:`KANDeepONet` (:class:`KANFNOConfig`, :class:`KANDeepONetConfig`);
layer :class:`SpectralConv` (also usable as ``conv_module`` of ``neuralop.models.FNO``).
"""

from __future__ import annotations

from solvers.lazy_exports import lazy_exports

_EXPORTS = {
    "build": "operators.registry",
    "register_model": "operators.registry",
    "model_names": "operators.registry",
    "describe": "operators.registry",
    "save": "operators.checkpoint",
    "load": "operators.checkpoint",
    "Operator": "operators.checkpoint",
    "checkpoint_metadata": "operators.checkpoint",
    "FNO": "operators.models.fno",
    "TFNO": "operators.models.fno",
    "FNOConfig": "operators.models.fno",
    "TFNOConfig": "operators.models.fno",
    "DeepONet": "operators.models.deeponet",
    "DeepONetConfig": "operators.models.deeponet",
    "KANFNO": "operators.models.kan_fno",
    "KANFNOConfig": "operators.models.kan_fno",
    "KANDeepONet": "operators.models.kan_deeponet",
    "KANDeepONetConfig": "operators.models.kan_deeponet",
    "MgNO": "operators.models.mgno",
    "MgNOConfig": "operators.models.mgno",
    "MGNO_PRESETS": "operators.models.mgno",
    "SpectralConv": "operators.layers.spectral_conv",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

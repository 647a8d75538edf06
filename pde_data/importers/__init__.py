"""Converters of published PDE dataset layouts into pdeop dataset files (``pdeop import``).

One module per layout registers an :class:`~pde_data.importers.plan.ImportFormat`;
:func:`~pde_data.importers.convert.import_dataset` detects the layout and writes the file.
"""

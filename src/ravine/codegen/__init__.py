"""One traced program, many backends.

:mod:`.trace` runs a rule on symbolic values and records a
:class:`~.program.Program`; :mod:`.program` holds what every generator shares (the
schedule, the passes, the calling convention, scalar evaluation on the host); a backend is
one module that turns a program into source for one target: :mod:`.c` for CPU kernels
(compiled and cached by :mod:`.native`), :mod:`.triton` for GPU kernels, :mod:`.js` for the
interactive page. Engines (``ravine.torch.engines``) pick a backend by device; nothing here
imports torch.
"""

"""Environments: render the shipped environment files, lock them, and build prefixes from locks.

* :mod:`dlsetup.envs.files.spec` — targets x variants x platforms, parsing and rendering environment.yml.
* :mod:`dlsetup.envs.conda.virtual_packages` — the explicit virtual packages each platform is solved with.
* :mod:`dlsetup.envs.variant` — ``--variant auto``: what this machine's hardware calls for.
* :mod:`dlsetup.envs.conda.request` — one ``dlsetup lock`` request: variant, platforms, render, lock.
* :mod:`dlsetup.envs.conda.lock` — solve (rattler or conda-lock) and write a conda-lock v1 file.
* :mod:`dlsetup.envs.conda.explain` — an unsatisfiable solve in plain words.
* :mod:`dlsetup.envs.conda.install` — verify a lock and build its environment atomically.
* :mod:`dlsetup.envs.location` — where ``--name`` environments go, this machine's platform
  (standard library only: ``dlsetup doctor`` imports it).
* :mod:`dlsetup.envs.jupyter` — register the environment as a Jupyter kernel.
* :mod:`dlsetup.envs.finish` — how to activate it, and ``dlsetup smoke`` inside it.
* :mod:`dlsetup.envs.build` — all of ``dlsetup create``: lock, install, kernel, smoke.
* :mod:`dlsetup.envs.progress` — progress on a terminal, plain lines otherwise.

rattler, conda_lock and asyncio (in :mod:`~dlsetup.envs.conda.install`) are imported inside functions
only.
"""

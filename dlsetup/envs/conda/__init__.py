"""The conda backend: solve with rattler (or conda-lock), write conda-lock v1 files, check them, and
build a prefix from any conda lock (conda-lock, explicit, pixi.lock) atomically."""

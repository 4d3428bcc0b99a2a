"""Every lock format dlsetup reads (conda-lock v1, explicit, pixi.lock), detected from content and
read into one model."""

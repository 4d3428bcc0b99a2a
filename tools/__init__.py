"""Maintainer scripts of the dlsetup repository (not shipped in the wheel, not user commands)."""

"""``build_environment``, the library behind ``dlsetup create``, called without the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from dlsetup.envs.backend import BuildOptions
from dlsetup.envs.build import build_environment
from dlsetup.envs.conda.request import LockRequest
from dlsetup.errors import InputError


def test_neither_a_target_nor_a_lock_is_an_input_error() -> None:
    with pytest.raises(InputError) as raised:
        build_environment(None)
    assert raised.value.message == "give either TARGET or --from-lock FILE (exactly one)"


def test_a_target_and_a_lock_together_is_an_input_error(tmp_path: Path) -> None:
    request = LockRequest("pytorch", "cpu", None, (), False, None, (), "rattler")
    with pytest.raises(InputError, match="exactly one"):
        build_environment(request, from_lock=tmp_path / "x.conda-lock.yml")


def test_prefix_and_name_together_is_an_input_error_before_anything_is_written(
    tmp_path: Path,
) -> None:
    with pytest.raises(InputError, match="--prefix and --name exclude each other"):
        build_environment(
            None, from_lock=tmp_path / "x.conda-lock.yml", prefix=tmp_path / "env", name="env"
        )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("option", "kwargs"),
    [("--no-dev", {"dev": False}), ("--extras", {"extras": ("docs",)}),
     ("--environment", {"environment": "gpu"})],
)  # fmt: skip
def test_a_selecting_option_a_venv_lock_has_no_part_for_is_refused_not_ignored(
    tmp_path: Path, option: str, kwargs: dict[str, object]
) -> None:
    lock = tmp_path / "pylock.toml"
    lock.write_text('lock-version = "1.0"\ncreated-by = "uv"\n[[packages]]\nname = "x"\n')
    with pytest.raises(InputError, match=f"^{option}.* applies to") as raised:
        build_environment(
            None,
            from_lock=lock,
            prefix=tmp_path / "env",
            options=BuildOptions(**kwargs),  # type: ignore[arg-type]
        )
    assert "PEP 751" in raised.value.message
    assert not (tmp_path / "env").exists()
    # the same lock without the option gets past this check (and fails later: no wheel)
    with pytest.raises(InputError) as other:
        build_environment(None, from_lock=lock, prefix=tmp_path / "env")
    assert "applies to" not in other.value.message

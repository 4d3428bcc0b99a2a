"""The platforms a venv lock is resolved for (:data:`VENV_PLATFORMS`): uv's ``--python-platform``,
the PEP 508 marker values and wheel tags that stand for each when a lock is read for it elsewhere
(:mod:`dlsetup.envs.venv.read`), and where PyTorch's CUDA wheels and TensorFlow's ``and-cuda`` extra
apply."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VenvPlatform:
    """A platform a venv lock is resolved for, and the PEP 508 marker environment and wheel tags
    that stand for it when a lock is read for it elsewhere (:mod:`dlsetup.envs.venv.read`).

    Attributes:
        name: dlsetup's (conda's) name, as ``--platform`` takes it: ``linux-64``.
        python_platform: uv's ``--python-platform``.
        sys_platform: its ``sys_platform`` marker value.
        platform_machine: its ``platform_machine`` marker value.
        cuda_wheels: PyTorch publishes CUDA wheels here whose arch lists the knowledge base has.
        and_cuda: TensorFlow's ``and-cuda`` extra (CUDA libraries as wheels) applies here.
        os_name: its ``os_name`` marker value.
        platform_system: its ``platform_system`` marker value.
        wheel_platforms: the wheel platform tags ``python_platform`` accepts, best first.
    """

    name: str
    python_platform: str
    sys_platform: str
    platform_machine: str
    cuda_wheels: bool
    and_cuda: bool
    os_name: str
    platform_system: str
    wheel_platforms: tuple[str, ...]

    @property
    def marker(self) -> str:
        """The PEP 508 marker that selects it in the merged lock."""
        return (
            f"sys_platform == '{self.sys_platform}' and "
            f"platform_machine == '{self.platform_machine}'"
        )


def _manylinux(arch: str) -> tuple[str, ...]:
    """The wheel platforms of ``ARCH-manylinux_2_28`` (uv's name): glibc 2.28 and older."""
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(28, 16, -1)]
    tags.append(f"manylinux2014_{arch}")
    if arch == "x86_64":
        tags += [f"manylinux_2_{minor}_{arch}" for minor in range(16, 4, -1)]
        tags += [f"manylinux2010_{arch}", f"manylinux1_{arch}"]
    return (*tags, f"linux_{arch}")


def _macos_arm64() -> tuple[str, ...]:
    """The wheel platforms of ``aarch64-apple-darwin``: macOS 13.0 (uv's default) and older."""
    from packaging.tags import mac_platforms

    return tuple(mac_platforms((13, 0), "arm64"))


VENV_PLATFORMS: dict[str, VenvPlatform] = {
    p.name: p
    for p in (
        VenvPlatform(
            "linux-64",
            "x86_64-manylinux_2_28",
            "linux",
            "x86_64",
            cuda_wheels=True,
            and_cuda=True,
            os_name="posix",
            platform_system="Linux",
            wheel_platforms=_manylinux("x86_64"),
        ),
        VenvPlatform(
            "linux-aarch64",
            "aarch64-manylinux_2_28",
            "linux",
            "aarch64",
            cuda_wheels=False,
            and_cuda=False,
            os_name="posix",
            platform_system="Linux",
            wheel_platforms=_manylinux("aarch64"),
        ),
        VenvPlatform(
            "osx-arm64",
            "aarch64-apple-darwin",
            "darwin",
            "arm64",
            cuda_wheels=False,
            and_cuda=False,
            os_name="posix",
            platform_system="Darwin",
            wheel_platforms=_macos_arm64(),
        ),
        VenvPlatform(
            "win-64",
            "x86_64-pc-windows-msvc",
            "win32",
            "AMD64",
            cuda_wheels=True,
            and_cuda=False,
            os_name="nt",
            platform_system="Windows",
            wheel_platforms=("win_amd64",),
        ),
    )
}

"""The platforms a venv lock is resolved for (:data:`VENV_PLATFORMS`): uv's ``--python-platform``,
the PEP 508 marker values and wheel tags that stand for each when a lock is read for it elsewhere
(:mod:`dlsetup.envs.venv.read`), and where PyTorch's CUDA wheels and TensorFlow's ``and-cuda`` extra
apply. Every value comes from the row of :data:`dlsetup.platforms.PLATFORM_TABLE`; only the wheel
tags' order (best first, at uv's default glibc and macOS levels) is worked out here."""

from __future__ import annotations

from dataclasses import dataclass

from dlsetup.platforms import PLATFORM_TABLE, PlatformInfo


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


def _macos(arch: str) -> tuple[str, ...]:
    """The wheel platforms of ``ARCH-apple-darwin``: macOS 13.0 (uv's default) and older."""
    from packaging.tags import mac_platforms

    return tuple(mac_platforms((13, 0), arch))


def _wheel_platforms(info: PlatformInfo) -> tuple[str, ...]:
    """The wheel platform tags uv's ``--python-platform`` of ``info`` accepts, best first."""
    if info.os == "linux":
        return _manylinux(info.platform_machine)
    if info.os == "osx":
        return _macos(info.platform_machine)
    return (f"win_{info.platform_machine.lower()}",)


#: the rows of :data:`dlsetup.platforms.PLATFORM_TABLE` the venv backend locks for
VENV_PLATFORMS: dict[str, VenvPlatform] = {
    p.name: VenvPlatform(
        p.name,
        p.uv_platform,
        p.sys_platform,
        p.platform_machine,
        cuda_wheels=p.torch_cuda_wheels,
        and_cuda=p.tf_and_cuda,
        os_name=p.os_name,
        platform_system=p.platform_system,
        wheel_platforms=_wheel_platforms(p),
    )
    for p in PLATFORM_TABLE
    if p.venv
}

"""Artifacts of several members (a network and its booster, a model and its value model):
one zip whose bytes depend only on its members', each member loaded by its own safe loader
(never a pickle)."""

import io
import zipfile

# Fixed member timestamps: the archive's bytes depend only on its members'.
ZIP_DATE = (1980, 1, 1, 0, 0, 0)


class UntrustedArtifact(ValueError):
    pass


def pack(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name, ZIP_DATE), data)
    return buffer.getvalue()


def unpack(artifact: bytes, names: tuple[str, ...], what: str) -> dict[str, bytes]:
    """The members `names` of an archive, which must hold exactly those; anything else is
    an UntrustedArtifact naming `what` it should have been."""
    try:
        with zipfile.ZipFile(io.BytesIO(artifact)) as archive:
            members = sorted(archive.namelist())
            if members != sorted(names):
                raise ValueError(f"members {members}")
            return {name: archive.read(name) for name in names}
    except (zipfile.BadZipFile, ValueError) as error:
        raise UntrustedArtifact(
            f"{what} artifact is not an archive of {' and '.join(names)} ({error})"
        ) from None

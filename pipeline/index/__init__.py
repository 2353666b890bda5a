"""The publish stage: put verified wheels into a private index pip can install from.

`publish(wheels, to)` writes a static PEP 503/691/658/700 tree when `to` is a folder (see static.py for
the layout and what readers are guaranteed), or uploads with twine when `to` is an http(s) URL (see
upload.py). Either way a wheel the symbol checker did not pass is refused before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pipeline.index.wheelinfo import PublishError, wheel_identity
from pipeline.log import log

__all__ = ["PublishError", "PublishResult", "is_url", "publish"]


@dataclass
class PublishResult:
    destination: str  # the index root (static) or the upload URL without credentials
    kind: str  # "static" | "upload"
    files: list[dict[str, object]] = field(default_factory=list)  # one item per wheel: filename, status, ...

    @property
    def added(self) -> list[str]:
        return [str(f["filename"]) for f in self.files if f["status"] in ("added", "uploaded")]

    @property
    def unconfirmed(self) -> list[str]:
        """Uploaded files the server's page does not list with their sha256: not a success to build on."""
        return [str(f["filename"]) for f in self.files if f["status"] == "unconfirmed"]

    def to_json(self) -> dict[str, object]:
        return {"destination": self.destination, "kind": self.kind, "files": self.files}


def is_url(to: str) -> bool:
    return to.startswith(("http://", "https://"))


def publish(
    wheels: list[Path],
    to: str,
    *,
    channel: str | None = None,
    verified: dict[Path, bool] | None = None,
    target: str | None = None,
    proofs: dict[Path, dict[str, object]] | None = None,
) -> PublishResult:
    """Publish wheels to a static index folder or an upload URL.

    `verified` maps a wheel to a verdict the caller already has (the orchestrator's verify stage, a
    `rewheel verify --json` record); wheels without one are verified here. `target` names the target the
    wheels were built for; without it each wheel's is inferred from its platform tag. Without `channel`,
    a wheel whose target has a channel (e.g. win_amd64-nanoserver) goes to that channel.

    Each file enters a static index with its proof record: `proofs[wheel]` when the caller made one (build -r
    for upstream wheels), else pipeline.proof.proof_for_publishing (the wheel's own proof or build record,
    else the gate's verdict)."""
    from pipeline.index.gate import check_verified, infer_target
    from pipeline.targets import get_target

    if not wheels:
        raise PublishError("nothing to publish: no wheels given")
    verdicts = {Path(p).resolve(): ok for p, ok in (verified or {}).items()}
    placed: list[tuple[Path, str | None, str]] = []  # wheel, channel, how it was cleared
    for wheel in wheels:
        _, version, _, _ = wheel_identity(wheel.name)  # a name that is no wheel's is refused before reading
        if version.local is not None:
            # pip puts demo-1.0+local in place of the demo 1.0 already published (`pip download demo==1.0`
            # takes it), so a local version would replace a published file in effect; PyPI refuses them too.
            raise PublishError(
                f"{wheel.name}: local versions (+{version.local}) cannot be published: to pip they are "
                f"the release {version.public}; publish a new version or build tag instead"
            )
        wheel_target = target or infer_target(wheel, channel)
        wheel_channel = channel if channel is not None else get_target(wheel_target).channel
        known = verdicts.get(wheel.resolve())
        if known is None:
            log.say(f"publish: verifying {wheel.name} for {wheel_target}")
            ok, why = check_verified(wheel, wheel_target)
            how = f"verify_wheel:{wheel_target}"
        else:
            ok, why, how = known, "the verify record says it failed", f"caller:{wheel_target}"
        if not ok:
            raise PublishError(f"{wheel.name}: refused, it did not pass verify for {wheel_target}: {why}")
        placed.append((wheel, wheel_channel, how))

    if is_url(to):
        from pipeline.index.upload import public_url, upload

        if channel is not None:
            raise PublishError("channels are folders of a static index; give the channel's own upload URL")
        outcomes = upload([w for w, _, _ in placed], to)
        return PublishResult(public_url(to), "upload", [o.to_json() for o in outcomes])

    from pipeline.index.static import StaticIndex, channel_root, stage
    from pipeline.proof import encode, proof_for_publishing

    given = {Path(p).resolve(): d for p, d in (proofs or {}).items()}

    def proof_of(wheel: Path, how: str) -> bytes:
        document = given.get(wheel.resolve())
        if document is None:
            document = proof_for_publishing(wheel, target=how.partition(":")[2], how=how)
        return encode(dict(document))

    root = Path(to)
    if root.exists() and not root.is_dir():
        raise PublishError(f"{root}: exists and is not a folder; --to takes an index folder or an URL")
    result = PublishResult(str(root), "static")
    channels = sorted({c for _, c, _ in placed}, key=lambda c: c or "")
    try:
        for wheel_channel in channels:
            index = StaticIndex(channel_root(root, wheel_channel))
            staged = [stage(w, how, proof_of(w, how)) for w, c, how in placed if c == wheel_channel]
            for outcome in index.add(staged):
                item: dict[str, object] = outcome.to_json()
                item["channel"] = wheel_channel
                item["index"] = str(index.root)
                result.files.append(item)
        if any(c is not None for c in channels):
            changed = {str(f["project"]) for f in result.files}  # the root's matrix covers its channels
            StaticIndex(root).refresh_landing(changed)
    except OSError as exc:  # the folder cannot hold an index (/proc, read-only, a file in the way)
        where = exc.filename or root
        raise PublishError(f"{where}: cannot write the index there: {exc.strerror or exc}") from None
    return result

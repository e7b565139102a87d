"""The one parser of `--device`: a torch device this machine has, or a one-line error naming those it has."""

from __future__ import annotations

from vsae.errors import VsaeError


def available_devices() -> list[str]:
    """Devices torch can use here, e.g. ['cpu', 'cuda', 'cuda:0', 'cuda:1']."""
    import torch  # lazy: the CLI parses --device without loading torch

    out = ["cpu"]
    if torch.cuda.is_available():
        out += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append("mps")
    return out


def parse_device(text: str) -> str:
    """Check that `text` names a device this torch can use; returns it unchanged (stripped)."""
    text = str(text).strip()
    if text == "cpu":  # always there: no torch import, so that a CLI error on CPU comes in well under 1 s
        return text
    import torch  # lazy: see above

    have = available_devices()
    hint = f"available here: {', '.join(have)}"
    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        guess = " (GPUs are 'cuda' or 'cuda:N')" if text.lower() in ("gpu", "nvidia") else ""
        raise VsaeError(f"--device {text!r} is not a device{guess}; {hint}") from None
    if dev.type == "cpu":
        return text
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch is a CPU-only build" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise VsaeError(f"--device {text}: {why}; {hint}")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise VsaeError(f"--device {text}: there are {torch.cuda.device_count()} GPUs; {hint}")
        return text
    if dev.type == "mps" and "mps" in have:
        return text
    raise VsaeError(f"--device {text}: not available or not supported by vsae; {hint}")

